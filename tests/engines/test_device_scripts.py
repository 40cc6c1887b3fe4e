"""The bundle's stage scripts, run from a real bundle on this machine (no TensorRT, no trtexec, no Jetson)."""

import os
import subprocess

import pytest

from tests.engines.device_fixtures import make_bundle


def _has_tensorrt_or_trtexec():
    res = subprocess.run(["bash", "-c", "python3 -c 'import tensorrt' 2>/dev/null || command -v trtexec || "
                          "test -x /usr/src/tensorrt/bin/trtexec"], capture_output=True)
    return res.returncode == 0


pytestmark = pytest.mark.skipif(_has_tensorrt_or_trtexec(), reason="checks the messages where TensorRT is absent")


@pytest.fixture(scope="module")
def code_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("scripts") / "bundle", with_code=True)


@pytest.mark.parametrize("script,message", [
    ("build.sh", "error: trtexec not found"),
    ("bench.sh", "error: neither the TensorRT Python bindings nor trtexec are available"),
    ("verify.sh", "error: neither the TensorRT Python bindings nor trtexec are available"),
    ("deploy.sh", "error: TensorRT is missing: neither its Python bindings nor trtexec are found"),
])
def test_scripts_fail_clearly_without_tensorrt(code_bundle, tmp_path, script, message):
    env = {k: v for k, v in os.environ.items() if k != "TRTEXEC"}
    res = subprocess.run(["bash", str(code_bundle / "scripts" / script), "--no-prompt"], cwd=str(tmp_path),
                         env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 3  # a missing prerequisite, not bad input
    assert res.stderr.splitlines()[-1].startswith(message), res.stderr
    assert not (code_bundle / "trt-cache").exists()


def test_missing_python_is_a_missing_prerequisite(code_bundle, tmp_path):
    env = dict(os.environ, PYTHON="python3-that-is-not-there")
    res = subprocess.run(["bash", str(code_bundle / "scripts" / "verify.sh")], env=env, capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 3 and "python3-that-is-not-there not found" in res.stderr
