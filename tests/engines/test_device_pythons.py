"""The device code under the real CPython of each device (JetPack 4.6's 3.6 for a jetson-nano bundle, JetPack
5's 3.8 for jetson-orin-jp5, JetPack 6's 3.10 for jetson-orin, Raspberry Pi OS Bookworm's 3.11 for
raspberry-pi-5) with that device's library versions (tests/engines/device_python.py), on a
bundle made by the host pipeline: classify with the ONNX Runtime backend (same top-5 as timm/PyTorch on the
host, probabilities within 1e-4), verify, deploy up to the TensorRT step (exit 3, status written; a CPU target
deploys completely with ONNX Runtime), bench.
Skipped with the reason where that Python is not found. Per-version checks: test_device_py36.py, _py310.py."""

import json
import os
import subprocess

import numpy as np
import pytest
from snp_edge.engines.common.targets import TARGETS

from tests.engines.device_python import (
    DEVICE_TARGETS,
    device_venv,
    host_top5,
    launch,
    pinned_versions,
    versions_line,
)

pytestmark = pytest.mark.slow
CPU_TARGETS = [n for n, t in TARGETS.items() if t.runtime == "onnxruntime"]


@pytest.fixture(params=sorted(DEVICE_TARGETS), ids=lambda v: "py" + v.replace(".", ""))
def device(request, host_bundles):
    """(device python, its version, (bundle, host handle, photo) for its target)."""
    version = request.param
    return device_venv(version), version, host_bundles(DEVICE_TARGETS[version])


def test_versions(device):
    python, version, _ = device
    assert versions_line(python) == pinned_versions(version)


def test_classify_matches_the_host_pipeline(device):
    python, _, (bundle, handle, photo) = device
    images = [photo] + [bundle / "reference" / "images" / n for n in ("astronaut.png", "rocket.png")]
    res = launch(python, bundle, "classify", bundle, *images, "--backend", "onnxruntime", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    labels = (bundle / "labels.txt").read_text().splitlines()
    for path, result in zip(images, doc["results"], strict=True):
        ids, probs = host_top5(handle, path)
        assert result["image"] == str(path)
        assert [t["class_id"] for t in result["top_k"]] == ids
        assert np.allclose([t["prob"] for t in result["top_k"]], probs, atol=1e-4)
        assert [t["label"] for t in result["top_k"]] == [labels[i] for i in ids]
    # the issue's own command line: `python3 -m engines classify BUNDLE photo.jpg --backend onnxruntime`
    res = subprocess.run([str(python), "-m", "engines", "classify", ".", str(photo), "--backend", "onnxruntime",
                          "--json"], cwd=str(bundle), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["results"][0] == doc["results"][0]


def test_verify_with_onnxruntime(device, tmp_path):
    python, version, (bundle, _, _) = device
    res = launch(python, bundle, "verify", bundle, "--backend", "onnxruntime", "--json-file", tmp_path / "v.json")
    assert res.returncode == 0, res.stderr + res.stdout
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["passed"] and report["preprocessing"]["max_abs_err"] == 0.0  # the device's Pillow == the host's
    assert report["preprocessing"]["n"] == 4 and report["top_k"]["max_prob_err"] < 1e-5
    assert report["env"]["python"].startswith(version + ".")


def test_deploy_stops_at_tensorrt_with_status(device, tmp_path):
    python, version, (bundle, _, _) = device
    if DEVICE_TARGETS[version] in CPU_TARGETS:
        pytest.skip("a CPU target's deploy needs no TensorRT: test_cpu_target_deploys_with_onnxruntime")
    status = tmp_path / "status.json"
    env = {"PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "tensorrt" not in p)}
    res = launch(python, bundle, "deploy", bundle, "--no-prompt", "--status-file", status, env=env)
    assert res.returncode == 3, res.stderr
    assert res.stderr.splitlines()[-1].startswith("error: TensorRT is missing")
    doc = json.loads(status.read_text())
    assert doc["status"] == "failed" and doc["exit_code"] == 3 and doc["failed_step"] == "tensorrt"
    assert [s["name"] for s in doc["steps"] if s["ok"]] == ["bundle"] and doc["engine"] is None
    assert doc["env"]["python"].startswith(version + ".")


def test_cpu_target_deploys_with_onnxruntime(device, tmp_path):
    """raspberry-pi-5 under Raspberry Pi OS Bookworm's Python 3.11: deploy is bundle, onnxruntime, cpu, verify."""
    python, version, (bundle, _, _) = device
    if DEVICE_TARGETS[version] not in CPU_TARGETS:
        pytest.skip("a TensorRT target")
    status = tmp_path / "status.json"
    res = launch(python, bundle, "deploy", bundle, "--no-prompt", "--status-file", status)
    assert res.returncode == 0, res.stderr
    doc = json.loads(status.read_text())
    assert doc["status"] == "ok" and [s["name"] for s in doc["steps"]] == ["bundle", "onnxruntime", "cpu", "power", "verify"]
    verify = doc["steps"][-1]["detail"]
    assert verify["precision"] == "fp32" and verify["logits_max_abs_err"] < 1e-3 and doc["engine"].endswith("model.onnx")
    assert doc["steps"][1]["detail"]["onnxruntime"] == "1.18.1" and doc["env"]["python"].startswith("3.11.")


def test_bench_with_onnxruntime(device, tmp_path):
    python, version, (bundle, _, _) = device
    out = tmp_path / "bench.json"
    res = launch(python, bundle, "bench", bundle, "--backend", "onnxruntime", "--batch", "1", "--batch", "4",
                 "--warmup", "2", "--runs", "10", "--preprocess", "--json-file", out)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert [s["batch"] for s in doc["sections"]] == [1, 4] and all(s["e2e_ms"]["n"] == 10 for s in doc["sections"])
    assert doc["model"]["base_model"] == "deit_tiny_patch16_224" and doc["model"]["gmacs"] > 0
    assert doc["target"] == DEVICE_TARGETS[version] and doc["env"]["python"].startswith(version + ".")
