"""``snp-edge compare``: unpruned model, its SNP versions and a reference model in one interleaved run."""

import json

import pytest
from snp_edge.bench.schema import validate

from tests.bench.bench_testutils import TINY_ARGS

MODEL_ARGS = [a for k, v in TINY_ARGS.items() for a in ("--model-arg", f"{k}={v}")]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "ort"])
def test_compare_tiny(cli, tmp_path, backend):
    rc, stdout, err = cli("compare", "--model", "vit_tiny_patch16_224", *MODEL_ARGS, "--weights", "random",
                          "--target-gmacs", "0.008", "--target-gmacs", "0.005",
                          "--baseline-models", "vit_small_patch16_224", "--backend", backend,
                          "--quick", "--threads", "1", "--out", tmp_path)
    assert rc == 0, err
    doc = json.loads((tmp_path / "results.json").read_text())
    validate(doc)
    cands = doc["candidates"]
    assert [c["role"] for c in cands] == ["unpruned", "pruned", "pruned", "reference"]
    assert [c["label"] for c in cands][1:3] == ["vit_tiny_patch16_224 + SNP (0.008 GMACs)",
                                                "vit_tiny_patch16_224 + SNP (0.005 GMACs)"]
    assert doc["protocol"]["baseline"] == "vit_tiny_patch16_224"
    assert cands[1]["gmacs"] == pytest.approx(0.008, rel=0.03) and cands[2]["gmacs"] == pytest.approx(0.005, rel=0.03)
    assert all(c["latency_ms"]["n"] == 30 for c in cands)
    assert doc["notice"] and "random weights" in doc["notice"]
    md = (tmp_path / "results.md").read_text()
    assert md.count("\n| vit_") == 4 and "random weights" in md


def test_compare_needs_a_target(cli, tmp_path):
    rc, _, err = cli("compare", "--model", "vit_tiny_patch16_224", *MODEL_ARGS, "--weights", "random",
                     "--quick", "--out", tmp_path)
    assert rc == 2 and "--preset, --config, --target-gmacs, --target-latency or --target-speedup" in err


def test_compare_round_to_aligns_pruned_widths():
    from snp_edge.cli import build_parser
    from snp_edge.cli.pipeline import build_members, targets_of

    args = build_parser().parse_args(["compare", "--model", "vit_tiny_patch16_224", *MODEL_ARGS, "--weights",
                                      "random", "--target-gmacs", "0.008", "--round-to", "8", "--references"])
    members = build_members(args, targets_of(args))
    assert [m.role for m in members] == ["unpruned", "pruned"]
    arch = members[1].handle.arch
    widths = [arch["embed"]] + [b[k] for b in arch["blocks"] for k in ("qk", "v", "mlp")]
    assert all(w % 8 == 0 for w in widths) and members[1].handle.gmacs <= 0.008
    assert members[1].label.endswith("round-to 8)")
