"""PruneSpec: the command line's options parsed once into one object; each rule (one target, the --round-to
default) decided in one place (snp_edge/spec.py)."""

from __future__ import annotations

import pytest

from snp_edge.cli import build_parser
from snp_edge.cli.args import prune_spec, resolve_round_to
from snp_edge.errors import SnpEdgeError
from snp_edge.spec import BUDGETS, PruneSpec, Target, round_to_for


def parse(*argv: str):
    return build_parser().parse_args(["prune", "--model", "deit_tiny_patch16_224", "--out", "x", *argv])


def test_exactly_one_target_is_one_rule_with_the_flags_named():
    assert Target(preset="deit_s_1.3g").require_one() == "preset"
    with pytest.raises(SnpEdgeError, match="give exactly one of --preset, --config, --target-gmacs, "
                                           "--target-latency, --target-speedup$"):
        Target().require_one()
    with pytest.raises(SnpEdgeError, match="not --preset, --target-gmacs$"):
        Target(preset="deit_s_1.3g", target_gmacs=1.0).require_one()
    assert Target(preset="deit_s_1.3g").require_one(BUDGETS, at_most=True) is None
    with pytest.raises(SnpEdgeError, match="give at most one of --target-gmacs, --target-latency, --target-speedup, "
                                           "not --target-gmacs, --target-speedup"):
        Target(target_gmacs=1.0, target_speedup=2.0).require_one(BUDGETS, at_most=True)


def test_round_to_default_is_one_rule():
    assert round_to_for(4, ("rtx3090",), 8) == 4  # given: wins
    assert round_to_for(None, ("rtx3090",), None) == 8  # tensor cores
    assert round_to_for(None, ("jetson-nano", "rtx3090"), None) == 1  # the Nano keeps exact widths
    assert round_to_for(None, (), 8) == 8  # a latency budget: its table's alignment
    assert round_to_for(None, (), None) == 1


def test_the_command_line_builds_one_spec(capsys):
    args = parse("--target-gmacs", "1.2", "--calib-images", "8", "--criterion", "l1", "--criterion-for", "qk=snp",
                 "--heads", "2", "--target", "rtx3090", "--seed", "3")
    assert resolve_round_to(args) == 8 and "multiples of 8 for rtx3090" in capsys.readouterr().err
    spec = prune_spec(args)
    assert spec == PruneSpec.of("deit_tiny_patch16_224", target_gmacs=1.2, calib_images=8, seed=3, heads=2, round_to=8,
                                criteria={"qk": "snp", "v": "l1", "mlp": "l1", "embed": "l1", "heads": "l1",
                                          "blocks": "l1"}, device_targets=("rtx3090",))
    assert prune_spec(args, preset="deit_s_1.3g").target == Target(preset="deit_s_1.3g")  # compare: one target each
    assert spec.with_target("config", "c.yaml").target == Target(config="c.yaml")


def test_old_criterion_flags_still_work_with_a_note(capsys):
    old = prune_spec(parse("--preset", "deit_s_1.3g", "--criterion-qk", "l2", "--criterion-blocks", "random"))
    assert "note: --criterion-qk l2 is now --criterion-for qk=l2" in capsys.readouterr().err
    new = prune_spec(parse("--preset", "deit_s_1.3g", "--criterion-for", "qk=l2", "--criterion-for", "blocks=random"))
    assert old == new and new.scoring.criteria["qk"] == "l2" and new.scoring.criteria["v"] == "snp-data"


@pytest.mark.parametrize("bad", ["qk", "qk=l3", "ffn=l1"])
def test_bad_criterion_for_is_one_line_and_status_2(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        parse("--preset", "deit_s_1.3g", "--criterion-for", bad)
    assert exc.value.code == 2
    assert f"expected COMP=CRIT with COMP one of qk, v, mlp, embed, heads, blocks and CRIT one of snp, snp-data, " \
           f"snp-attn, l1, l2, random, got {bad!r}" in capsys.readouterr().err
