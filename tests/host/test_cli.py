"""The `snp-edge prune` / `info` contract that scripts depend on, and its one-line errors."""

from __future__ import annotations

import json

import pytest

from snp_edge.cli import main

TINY = ["--model", "deit_tiny_patch16_224", "--model-arg", "img_size=64", "--weights", "random"]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_prune_json_contract(capsys, tmp_path, calib_npy):
    out = tmp_path / "pruned"
    code, stdout, _ = _run(capsys, "prune", *TINY, "--preset", "deit_t_0.6g", "--calib", str(calib_npy),
                           "--calib-images", "8", "--out", str(out), "--json")
    assert code == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["gmacs_after"] < summary["gmacs_before"] and summary["params_after"] < summary["params_before"]
    assert summary["accuracy_meaningful"] is False and "meaningless" in summary["notice"]
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    code, stdout, _ = _run(capsys, "info", str(out), "--json")
    info = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and info["gmacs_after"] == summary["gmacs_after"] and info["widths"] == summary["widths"]
    assert info["pruning"]["calibration"]["images"] == 8


@pytest.mark.slow
def test_prune_target_gmacs_round_to(capsys, tmp_path):
    code, stdout, _ = _run(capsys, "prune", *TINY, "--target-gmacs", "0.05", "--round-to", "8",  # macs: no probes
                           "--criterion", "l2", "--group-weight", "macs", "--out", str(tmp_path / "p"), "--json")
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and 0.98 * 0.05 <= summary["gmacs_after"] <= 0.05
    assert summary["widths"]["embed"] % 8 == 0


@pytest.mark.slow
def test_prune_kl_residual_and_rescore(capsys, tmp_path, calib_npy):
    """--embed-score kl and --rescore reach the recipe; the budget is met as with any other criterion."""
    out = tmp_path / "p"
    code, stdout, _ = _run(capsys, "prune", *TINY, "--target-gmacs", "0.05", "--embed-score", "kl", "--rescore",
                           "--calib", str(calib_npy), "--calib-images", "2", "--group-weight", "macs",  # no probes
                           "--out", str(out), "--json")
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and 0.98 * 0.05 <= summary["gmacs_after"] <= 0.05
    code, stdout, _ = _run(capsys, "info", str(out), "--json")
    pruning = json.loads(stdout.strip().splitlines()[-1])["pruning"]
    assert pruning["embed_score"] == "kl" and pruning["rescore"] is True


def _widths(summary: dict) -> list[int]:
    w = summary["widths"]
    return [w["embed"]] + [b[k] for b in w["blocks"] for k in ("qk", "v", "mlp")]


@pytest.mark.slow
def test_prune_aligns_widths_for_the_target(capsys, tmp_path):
    """--round-to defaults to the --target's alignment: 8 for FP16 tensor cores (jetson-orin, rtx3090), 1 for
    the Nano; the preset itself stays the paper's (an explicit --round-to 1 gives its exact widths)."""
    runs = {}
    for name, extra in (("orin", ["--target", "jetson-orin"]), ("nano", ["--target", "jetson-nano"]),
                        ("exact", ["--target", "rtx3090", "--round-to", "1"])):
        code, stdout, stderr = _run(capsys, "prune", *TINY, "--preset", "deit_t_0.6g", "--criterion", "l1", *extra,
                                    "--out", str(tmp_path / name), "--json")
        assert code == 0, stderr
        runs[name] = (json.loads(stdout.strip().splitlines()[-1]), stderr)
    orin, stderr = runs["orin"]
    assert all(w % 8 == 0 for w in _widths(orin)) and orin["gmacs_after"] <= runs["exact"][0]["gmacs_after"]
    assert "note: widths rounded to multiples of 8 for jetson-orin (FP16 tensor cores); --round-to 1 keeps the exact " \
           "widths" in stderr
    recipe = json.loads((tmp_path / "orin" / "model.json").read_text())["pruning"]["target"]
    assert recipe["round_to"] == 8 and recipe["preset"] == "deit_t_0.6g"
    assert _widths(runs["nano"][0]) == _widths(runs["exact"][0]) and "note:" not in runs["nano"][1]
    assert any(w % 8 for w in _widths(runs["exact"][0]))  # the paper's odd widths


@pytest.mark.slow
def test_prune_heads_and_blocks(capsys, tmp_path):
    code, stdout, _ = _run(capsys, "prune", *TINY, "--config", str(_config(tmp_path, "qk: 32\n")), "--heads", "2",
                           "--drop-blocks", "2", "--criterion-heads", "l1", "--out", str(tmp_path / "p"), "--json")
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and len(summary["widths"]["blocks"]) == 10
    assert all(b["heads"] == 2 and b["qk"] == 32 for b in summary["widths"]["blocks"])


def _config(tmp_path, text: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("extra,message", [
    (["--model", "no_such_model", "--preset", "deit_t_0.6g"], "unknown model 'no_such_model'"),
    (["--model", "resnet18", "--preset", "deit_t_0.6g"], "unsupported module <model> (ResNet)"),
    (["--model", "deit_tiny_patch16_224", "--preset", "deit_s_1.3g"], "preset deit_s_1.3g is for deit_small"),
    (["--model", "deit_tiny_patch16_224", "--config", "CFG:ratios: {mlp: 1.5}"], r"outside [0, 1)"),
    (["--model", "deit_tiny_patch16_224", "--config", "CFG:qk: 0"], "to zero"),
    (["--model", "deit_tiny_patch16_224", "--preset", "deit_t_0.6g", "--calib", "EMPTY"], "holds no images"),
    (["--model", "deit_tiny_patch16_224", "--preset", "deit_t_0.6g", "--calib", "CORRUPT"], "bad.jpg"),
    (["--model", "deit_tiny_patch16_224", "--preset", "deit_t_0.6g", "--weights", "CKPT"], "shape mismatch"),
    (["--model", "deit_tiny_patch16_224", "--preset", "deit_t_0.6g", "--model-arg", "depth"], "key=value"),
])
def test_bad_input_one_line_error_no_output(capsys, tmp_path, extra, message):
    argv = []
    for arg in extra:
        if arg.startswith("CFG:"):
            arg = str(_config(tmp_path, arg[4:]))
        elif arg == "EMPTY":
            (tmp_path / "empty").mkdir()
            arg = str(tmp_path / "empty")
        elif arg == "CORRUPT":
            (tmp_path / "corrupt" / "cls").mkdir(parents=True)
            (tmp_path / "corrupt" / "cls" / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
            arg = str(tmp_path / "corrupt")
        elif arg == "CKPT":
            import torch

            torch.save({"state_dict": {"pos_embed": torch.zeros(1, 5, 7)}}, tmp_path / "ckpt.pth")
            arg = str(tmp_path / "ckpt.pth")
        argv.append(arg)
    if "--weights" not in argv:
        argv += ["--weights", "random"]
    out = tmp_path / "out"
    code, stdout, stderr = _run(capsys, "prune", "--model-arg", "img_size=64", *argv, "--out", str(out))
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.slow
def test_existing_output_refused_without_force(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    code, _, stderr = _run(capsys, "prune", *TINY, "--preset", "deit_t_0.6g", "--out", str(out))
    assert code == 2 and "--force" in stderr and (out / "keep.txt").read_text() == "user data"
    code, _, _ = _run(capsys, "prune", *TINY, "--preset", "deit_t_0.6g", "--criterion", "l1", "--out", str(out),
                      "--force")
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]


def test_info_on_a_non_model_folder(capsys, tmp_path):
    code, _, stderr = _run(capsys, "info", str(tmp_path))
    assert code == 2 and "not a pruned model folder" in stderr


def test_presets_listed(capsys):
    code, stdout, _ = _run(capsys, "presets")
    assert code == 0 and "deit_s_1.3g" in stdout and "deit_b_3.5g_heads" in stdout


@pytest.mark.slow
def test_python_dash_m(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "snp_edge", "presets"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "deit_t_0.6g" in proc.stdout
