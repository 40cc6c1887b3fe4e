"""`snp-edge run`: the main job end to end on a small model (prune -> export -> bundle -> bench)."""

from __future__ import annotations

import json

import pytest

from snp_edge.cli import main


@pytest.mark.slow
def test_run_end_to_end(capsys, tmp_path):
    out = tmp_path / "run"
    code = main(["run", "--model", "deit_tiny_patch16_224", "--model-arg", "img_size=64", "--weights", "random",
                 "--target-gmacs", "0.05", "--references", "--targets", "rtx3090", "--quick", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prune"]["gmacs_after"] <= 0.05 < summary["prune"]["gmacs_before"]
    assert "meaningless" in summary["notice"] and "NOTICE" in stdout
    # the RTX 3090's tensor cores: widths rounded to multiples of 8 by default (--round-to's target default)
    pruned = "deit_tiny_patch16_224 + SNP (0.05 GMACs, round-to 8)"
    assert set(summary["onnx"]) == {"deit_tiny_patch16_224", pruned} and summary["pruning"]["target"]["round_to"] == 8
    assert summary["prune"]["widths"]["embed"] % 8 == 0
    assert all(p["max_abs"] <= 1e-4 for v in summary["onnx"].values() for p in v["parity"])
    assert (out / "bundles" / "rtx3090" / "manifest.json").is_file()
    results = json.loads((out / "bench" / "results.json").read_text())
    assert [c["label"] for c in results["candidates"]] == ["deit_tiny_patch16_224", pruned]
    assert "meaningless" in (out / "bench" / "results.md").read_text()
    assert (out / "bench" / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.slow
def test_run_default_output_folder_is_created(capsys, tmp_path, monkeypatch):
    """From a fresh clone there is no runs/ yet: the default output lands in runs/run-<time>/."""
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--model", "deit_tiny_patch16_224", "--model-arg", "img_size=32", "--weights", "random",
                 "--config", str(_cfg(tmp_path)), "--criterion", "l1", "--references", "--targets", "--backend",
                 "none"])
    assert code == 0, capsys.readouterr().err
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("run-") and (run / "pruned" / "model.json").is_file()


def _cfg(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("mlp: 384\n")
    return path


def test_run_refuses_existing_output(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    assert main(["run", "--out", str(tmp_path / "run"), "--weights", "random"]) == 2
    assert "--force" in capsys.readouterr().err
