"""Iterative pruning (snp_edge.train.iterative, ``snp-edge prune-iterative``): a pruned model pruned again, the
budget schedule, prune-distil rounds on a tiny ViT and image folder, resuming after the finished steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from snp_edge.api import prune
from snp_edge.arch import arch_of
from snp_edge.cli import main
from snp_edge.errors import SnpEdgeError
from snp_edge.models import load_model
from snp_edge.spec import PruneSpec
from snp_edge.surgery import apply_widths
from snp_edge.train.config import FinetuneConfig
from snp_edge.train.iterative import Schedule, budgets, iterate, model_gmacs
from tests.train.train_testutils import TINY_ARGS

BASE = "deit_tiny_patch16_224"


@pytest.fixture(scope="module")
def base_weights(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    handle = load_model(BASE, "random", TINY_ARGS)
    path = tmp_path_factory.mktemp("base") / "base.safetensors"
    save_file({k: v.contiguous() for k, v in handle.model.state_dict().items()}, str(path))
    return path


def test_budgets_geometric_and_linear():
    assert budgets(8.0, 2.0, 2, "geometric") == pytest.approx([4.0, 2.0])
    assert budgets(8.0, 2.0, 3, "linear") == pytest.approx([6.0, 4.0, 2.0])
    assert budgets(8.0, 2.0, 1)[-1] == 2.0
    with pytest.raises(SnpEdgeError, match="below the unpruned"):
        budgets(8.0, 8.5, 2)
    with pytest.raises(SnpEdgeError, match="--steps must be at least 1"):
        Schedule(steps=0).check()
    assert Schedule(3, epochs_per_step=2, final_epochs=5).total_epochs == 9


def test_pruned_model_pruned_again_keeps_its_neurons():
    """Cutting a pruned model to its own widths is the identity: same arch (composed back into the base model's
    indices, heads included) and the same outputs; a further cut lands under its budget."""
    full = load_model(BASE, "random", {**TINY_ARGS, "embed_dim": 64, "num_heads": 4})
    once = prune(full, config={"ratios": {"embed": 0.75, "qk": 0.5, "v": 0.75, "mlp": 0.5}}, heads=3,
                 criteria="l1").handle
    from snp_edge.criteria import ScoreOptions, compute_scores

    opts = ScoreOptions(criteria=dict.fromkeys(("qk", "v", "mlp", "embed", "heads", "blocks"), "l1"))
    scores = compute_scores(once.model, None, opts, frozenset({"qk", "v", "mlp", "embed", "heads"}))
    same = apply_widths(once, arch_of(once.model), scores)
    assert same.arch == once.arch
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(same.model(x), once.model(x), rtol=0, atol=0)
    target = model_gmacs(once) * 0.6
    twice = prune(once, target_gmacs=target, heads=2, criteria="l1").handle
    assert 0.98 * target <= model_gmacs(twice) <= target
    assert all(set(h) <= set(o) for h, o in zip(twice.arch["heads_kept"], once.arch["heads_kept"], strict=True))
    assert twice.model(x).shape == (2, 3)


def _cfg() -> FinetuneConfig:
    return FinetuneConfig(epochs=1, batch_size=8, workers=0, progress=False, warmup_epochs=0, seed=0)


@pytest.mark.slow
def test_iterate_two_steps_then_resume(tmp_path, base_weights, tiny_data, capsys):
    spec = PruneSpec.of(BASE, weights=str(base_weights), model_args=TINY_ARGS, target_gmacs=1.0, criteria="l1")
    full = model_gmacs(load_model(BASE, str(base_weights), TINY_ARGS))
    spec = spec.with_target("target_gmacs", full * 0.4)
    out = tmp_path / "run"
    result = iterate(spec, tiny_data, out, _cfg(), Schedule(2, "geometric", 1, 1), progress=True)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["budgets_gmacs"] == pytest.approx([full * 0.4 ** 0.5, full * 0.4])
    for row, budget in zip(result["steps"], plan["budgets_gmacs"], strict=True):
        assert 0.98 * budget <= row["gmacs"] <= budget and not row["skipped"]
        assert 0 <= row["val_top1"] <= 100
    for k in (1, 2):
        desc = json.loads((out / f"step-{k}" / "model.json").read_text())
        assert desc["iterative"]["step"] == k and desc["pruning"]["target"]["target_gmacs"] == pytest.approx(
            plan["budgets_gmacs"][k - 1])
        assert (out / f"step-{k}.train" / "checkpoint.pt").is_file()
    assert result["out"] == str(out / "step-2")
    err = capsys.readouterr().err
    assert "step 1/2: pruning" in err and "step 2/2: done" in err

    # a rerun does no pruning or training: every step is read back from its folder, nothing is rewritten
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "plan.json"}
    again = iterate(spec, tiny_data, out, _cfg(), Schedule(2, "geometric", 1, 1), progress=True)
    assert [r["skipped"] for r in again["steps"]] == [True, True]
    assert [r["gmacs"] for r in again["steps"]] == pytest.approx([r["gmacs"] for r in result["steps"]])
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "done by an earlier run" in capsys.readouterr().err

    # a step whose model folder is missing is done again: pruned the same way, its fine-tuning resumed from
    # its checkpoint (here: finished), giving the same model
    before = (out / "step-2" / "model.safetensors").read_bytes()
    import shutil

    shutil.rmtree(out / "step-2")
    redo = iterate(spec, tiny_data, out, _cfg(), Schedule(2, "geometric", 1, 1), progress=False)
    assert [r["skipped"] for r in redo["steps"]] == [True, False]
    assert (out / "step-2" / "model.safetensors").read_bytes() == before

    # another plan in the same folder is refused, naming what differs
    with pytest.raises(SnpEdgeError, match="another plan .*schedule"):
        iterate(spec, tiny_data, out, _cfg(), Schedule(3, "geometric", 1, 1), progress=False)


def test_cli_refuses_bad_schedule(tmp_path, base_weights, tiny_data, capsys):
    common = ["prune-iterative", BASE, "--weights", str(base_weights), "--data", str(tiny_data),
              "--out", str(tmp_path / "o")] + [a for k, v in TINY_ARGS.items() for a in ("--model-arg", f"{k}={v}")]
    assert main([*common, "--target-gmacs", "0.001", "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert main([*common, "--target-gmacs", "50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "below the unpruned model's" in err[0], err
    assert not (tmp_path / "o").exists()
    assert main([*common, "--target-gmacs", "0.001", "--teacher", "deit_small_patch16_224"]) == 2
    assert "distils from the unpruned model" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_runs_two_steps(tmp_path, base_weights, tiny_data, capsys):
    full = model_gmacs(load_model(BASE, str(base_weights), TINY_ARGS))
    out = tmp_path / "cli"
    argv = ["prune-iterative", BASE, "--weights", str(base_weights), "--data", str(tiny_data), "--out", str(out),
            "--target-gmacs", f"{full * 0.5:.9f}", "--steps", "2", "--epochs-per-step", "1", "--epochs", "1",
            "--batch-size", "8", "--workers", "0", "--warmup-epochs", "0", "--criterion", "l1", "--json",
            *[a for k, v in TINY_ARGS.items() for a in ("--model-arg", f"{k}={v}")]]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["step"] for r in result["steps"]] == [1, 2] and result["total_epochs"] == 2
    assert result["steps"][-1]["gmacs"] <= full * 0.5 and result["out"] == str(out / "step-2")
    assert (out / "step-2" / "model.json").is_file()
