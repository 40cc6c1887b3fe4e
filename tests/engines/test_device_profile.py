"""``python3 -m engines profile``: the latency plan it reads, its errors, its Python 3.6 cleanliness, and (where
TensorRT exists) a real table measured from a small plan."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PY36 = os.path.expanduser("~/.pyenv/versions/3.6.15/bin/python3.6")


def _engines(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "engines", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def _plan(tmp_path):
    """A plan for DeiT-Tiny at 32 px with two values per axis (from the host command)."""
    path = tmp_path / "plan.json"
    res = subprocess.run([sys.executable, "-m", "snp_edge", "profile", "--model", "deit_tiny_patch16_224",
                          "--model-arg", "img_size=32", "--points", "2", "--model-heads-only", "--plan-only",
                          "--out", str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return path


@pytest.mark.skipif(not os.path.exists(PY36), reason="CPython 3.6.15 is not installed under pyenv")
def test_device_profile_modules_compile_on_python36(tmp_path):
    for name in ("latency_table.py", "profile.py"):
        shutil.copy(REPO / "engines" / name, tmp_path / name)
    res = subprocess.run([PY36, "-m", "py_compile", str(tmp_path / "latency_table.py"), str(tmp_path / "profile.py")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_plan_errors_are_one_line_with_status_2(tmp_path):
    res = _engines("profile", str(tmp_path / "missing.json"), "--out", str(tmp_path / "t.json"))
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "latency plan not found" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    res = _engines("profile", str(bad), "--out", str(tmp_path / "t.json"))
    assert res.returncode == 2 and "is not a latency plan" in res.stderr
    assert not (tmp_path / "t.json").exists()


@pytest.mark.slow
def test_plan_is_found_in_a_folder_and_an_existing_table_is_kept(tmp_path):
    plan = _plan(tmp_path)
    folder = tmp_path / "bundle"
    folder.mkdir()
    shutil.copy(plan, folder / "latency-plan.json")
    from snp_edge.engines.profile import read_plan

    doc = read_plan(str(folder))
    assert doc["model"]["name"] == "deit_tiny_patch16_224" and doc["grid"]["heads"] == [3]
    existing = tmp_path / "table.json"
    existing.write_text("mine")
    res = _engines("profile", str(plan), "--out", str(existing))
    assert res.returncode == 2 and "--force" in res.stderr and existing.read_text() == "mine"


@pytest.mark.slow
def test_without_tensorrt_profile_says_so(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed: the real measurement below runs instead")
    except ImportError:
        pass
    res = _engines("profile", str(_plan(tmp_path)), "--out", str(tmp_path / "t.json"))
    assert res.returncode != 0 and "TensorRT" in res.stderr and not (tmp_path / "t.json").exists()


@pytest.mark.trt
def test_trt_profile_measures_a_valid_table(tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT Python bindings not installed")
    from snp_edge.engines import latency_table as lt
    from snp_edge.engines.common.errors import EnginesError
    from snp_edge.engines.envinfo import device_identity

    try:
        device_identity()
    except EnginesError as exc:
        pytest.skip(f"no usable GPU/CUDA bindings: {exc}")
    out = tmp_path / "table.json"
    res = _engines("profile", str(_plan(tmp_path)), "--out", str(out), "--warmup", "2", "--runs", "5")
    assert res.returncode == 0, res.stderr[-2000:]
    table = lt.read_table(out)
    assert table["backend"] == "trt" and table["precision"] == "fp16" and table["calibration"]["factor"] > 0
