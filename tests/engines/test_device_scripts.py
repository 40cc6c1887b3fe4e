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
    ("build.sh", "neither the TensorRT Python bindings nor trtexec are available"),
    ("bench.sh", "neither the TensorRT Python bindings nor trtexec are available"),
    ("verify.sh", "verify needs the TensorRT Python bindings"),
])
def test_scripts_fail_clearly_without_tensorrt(code_bundle, tmp_path, script, message):
    env = {k: v for k, v in os.environ.items() if k != "TRTEXEC"}
    res = subprocess.run(["bash", str(code_bundle / "scripts" / script), "--no-prompt"], cwd=str(tmp_path),
                         env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 2
    assert f"[{script}] error: {message}" in res.stderr
    assert not (code_bundle / "trt-cache").exists()
