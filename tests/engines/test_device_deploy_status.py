"""Issue 22 point 3: a deploy that scripts can trust. The status file is rewritten on every exit (usage errors
included, never the previous run's status left), ``--json`` prints it on failure too, ``--backend onnxruntime``
deploys without TensorRT, ``--preflight-only`` builds nothing."""

import json
import os
import subprocess
import sys

import pytest

from tests.engines.device_fixtures import fake_trtexec, gpu_python, make_bundle
from tests.engines.test_device_scripts import _has_tensorrt_or_trtexec

STALE = {"schema": "snp-edge-deploy/1", "status": "failed", "exit_code": 3, "failed_step": "tensorrt"}


@pytest.fixture(scope="module")
def code_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("deploy") / "bundle", with_code=True, with_images=True)


def _deploy(bundle, *flags, env=None):
    return subprocess.run(["bash", str(bundle / "scripts" / "deploy.sh"), "--no-prompt", *flags],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, PYTHON=sys.executable, **(env or {})))


@pytest.mark.parametrize("flags,message", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--max-batch", "0"], "argument --max-batch: "),
    (["--backend", "trtexec"], "argument --backend: invalid choice: 'trtexec'"),
])
def test_usage_errors_rewrite_the_status_file(code_bundle, tmp_path, flags, message):
    status = tmp_path / "status.json"
    for where in (["--status-file", str(status)], []):
        target = status if where else code_bundle / "deploy-status.json"
        target.write_text(json.dumps(STALE))
        res = _deploy(code_bundle, *where, *flags, "--json")
        assert res.returncode == 2 and message in res.stderr.splitlines()[-1], res.stderr
        doc = json.loads(target.read_text())
        assert doc["status"] == "failed" and doc["exit_code"] == 2 and doc["failed_step"] == "usage"
        assert message in doc["error"] and doc["bundle"] == str(code_bundle)
        assert json.loads(res.stdout.strip().splitlines()[-1]) == doc  # --json prints it on failure
    (code_bundle / "deploy-status.json").unlink()


@pytest.mark.skipif(_has_tensorrt_or_trtexec(), reason="checks the failure where TensorRT is absent")
def test_json_on_failure_and_preflight_only(code_bundle, tmp_path):
    status = tmp_path / "status.json"
    env = {"PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "tensorrt" not in p)}
    env.update(TRTEXEC="")
    res = _deploy(code_bundle, "--status-file", str(status), "--json", env=env)
    assert res.returncode == 3, res.stderr
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc == json.loads(status.read_text())
    assert doc["exit_code"] == 3 and doc["failed_step"] == "tensorrt" and doc["backend"] == "tensorrt"
    # preflight with a (stand-in) TensorRT: every check, nothing built
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_trtexec(bin_dir)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": str(gpu_python(tmp_path))}
    res = subprocess.run(["bash", str(code_bundle / "scripts" / "deploy.sh"), "--no-prompt", "--preflight-only",
                          "--status-file", str(status), "--json"], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, **env), stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["status"] == "ok" and doc["preflight_only"] is True and doc["engine"] is None
    assert [s["name"] for s in doc["steps"]] == ["bundle", "tensorrt", "gpu", "resources", "power"]
    assert doc["steps"][-1]["detail"]["changed"] is False and "preflight passed" in res.stderr
    assert not (code_bundle / "trt-cache").exists()


@pytest.mark.slow
def test_deploy_with_onnxruntime(code_bundle, tmp_path):
    status = tmp_path / "status.json"
    status.write_text(json.dumps(STALE))
    res = _deploy(code_bundle, "--backend", "onnxruntime", "--status-file", str(status), "--preflight-only")
    assert res.returncode == 0, res.stderr
    assert [s["name"] for s in json.loads(status.read_text())["steps"]] == ["bundle", "onnxruntime", "cpu", "power"]
    res = _deploy(code_bundle, "--backend", "onnxruntime", "--status-file", str(status), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc == json.loads(status.read_text())
    assert doc["status"] == "ok" and doc["backend"] == "onnxruntime" and doc["failed_step"] is None
    assert [s["name"] for s in doc["steps"]] == ["bundle", "onnxruntime", "cpu", "power", "verify"]
    assert doc["steps"][1]["detail"]["onnxruntime"] and doc["steps"][1]["detail"]["pillow"]
    assert doc["steps"][-1]["detail"]["preprocessing_max_abs_err"] == 0.0
    assert doc["engine"] == str(code_bundle / "model.onnx")
    # a modified bundle: exit 2, the status says so
    (code_bundle / "extra.txt").write_text("x")
    try:
        res = _deploy(code_bundle, "--backend", "onnxruntime", "--status-file", str(status), "--json")
    finally:
        (code_bundle / "extra.txt").unlink()
    assert res.returncode == 2 and json.loads(res.stdout.strip().splitlines()[-1])["failed_step"] == "bundle"
