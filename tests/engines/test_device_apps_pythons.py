"""Issue 22's device commands under the real CPython 3.6 (JetPack 4.6) and 3.10 (JetPack 6) with the device's
library versions (tests/engines/device_python.py), on bundles made by the host pipeline: deploy with ONNX
Runtime and its status on a usage error, classify with ``--backend auto`` on files, a folder and a video made
here with OpenCV (one result per frame), the fast preprocessing. Skipped with the reason where that Python is
not found."""

import json
import shutil

import pytest

from tests.engines.device_python import DEVICE_TARGETS, device_venv, launch

pytestmark = pytest.mark.slow

VERSIONS = ("3.6", "3.10")


@pytest.fixture(params=VERSIONS, ids=lambda v: "py" + v.replace(".", ""))
def device(request, host_bundles, tmp_path):
    """(device python, its version, a copy of the host-made bundle for its target, photo)."""
    version = request.param
    bundle, _, photo = host_bundles(DEVICE_TARGETS[version])
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    return device_venv(version), version, copy, photo


def _last_json(res):
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_deploy_onnxruntime_and_usage_status(device, tmp_path):
    python, version, bundle, _ = device
    status = tmp_path / "status.json"
    res = launch(python, bundle, "deploy", bundle, "--backend", "onnxruntime", "--no-prompt", "--status-file", status,
                 "--json")
    assert res.returncode == 0, res.stderr
    doc = _last_json(res)
    assert doc["status"] == "ok" and [s["name"] for s in doc["steps"]] == ["bundle", "onnxruntime", "power", "verify"]
    assert doc["env"]["python"].startswith(version + ".") and doc == json.loads(status.read_text())
    res = launch(python, bundle, "deploy", bundle, "--max-batch", "0", "--status-file", status, "--json")
    assert res.returncode == 2 and "--max-batch" in res.stderr.splitlines()[-1]
    doc = json.loads(status.read_text())
    assert doc["exit_code"] == 2 and doc["failed_step"] == "usage" and _last_json(res) == doc
