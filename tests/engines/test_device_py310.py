"""The device code of a jetson-orin bundle under a real CPython 3.10 (JetPack 6's Python) with the library
versions a JetPack 6 user has (numpy 1.21.6, onnxruntime 1.18.0, Pillow 9.0.1, in a venv cached in
.cache/py310), beyond what test_device_pythons.py runs under every device Python (classify against the host,
verify, deploy up to TensorRT, bench): the Classifier API with no
pycuda (nor TensorRT, torch) imported, a DLA request refused before TensorRT is looked for, and the trtexec
path of TensorRT 10.3 on a DLA core (stand-in trtexec, an Orin's GPU identity). Skipped with the reason where
no Python 3.10 is found."""

import json
import os
import shutil
import subprocess

import pytest

from tests.engines.device_fixtures import ORIN_IDENTITY, fake_trtexec, gpu_python
from tests.engines.device_python import launch

pytestmark = pytest.mark.slow


@pytest.fixture(name="orin_bundle")
def _orin_bundle(host_bundles):
    return host_bundles("jetson-orin")


def test_classifier_imports_no_pycuda(py310, orin_bundle):
    bundle, _, photo = orin_bundle
    assert json.loads((bundle / "manifest.json").read_text())["onnx"]["opset"] == 17  # TensorRT 10.3's ONNX
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from engines import Classifier; "
            "from engines.preprocess import load_image; c = Classifier(sys.argv[1], backend='onnxruntime'); "
            "print(len(c.classify(load_image(sys.argv[2]), top_k=3)[0])); "
            "print(sorted(m for m in ('pycuda', 'cuda', 'tensorrt', 'torch') if m in sys.modules))")
    res = subprocess.run([str(py310), "-c", code, str(bundle), str(photo)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["3", "[]"]


def test_dla_request_is_refused_before_tensorrt(py310, orin_bundle, tmp_path):
    bundle = orin_bundle[0]
    status = tmp_path / "status.json"
    env = {"PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "tensorrt" not in p)}
    res = launch(py310, bundle, "deploy", bundle, "--no-prompt", "--dla-core", "2", "--status-file", status, env=env)
    assert res.returncode == 2 and res.stderr.splitlines()[-1].startswith(
        "error: --dla-core 2: jetson-orin modules have at most 2 DLA cores (0, 1)")
    doc = json.loads(status.read_text())
    assert doc["failed_step"] == "bundle" and doc["exit_code"] == 2


def test_trtexec_dla_path_under_py310(py310, orin_bundle, tmp_path):
    """build.sh / verify.sh / bench.sh on DLA core 0 through trtexec (TensorRT 10.3's flags and log), run by the
    device's own Python 3.10; the fallback layers land in the sidecar."""
    bundle = tmp_path / "copy"
    shutil.copytree(orin_bundle[0], bundle)
    env = dict(os.environ, TRTEXEC=str(fake_trtexec(tmp_path, py310)),
               PYTHON=str(gpu_python(tmp_path, py310, ORIN_IDENTITY)), FAKE_TRTEXEC_VERSION="v100300",
               FAKE_TRTEXEC_DLA_CORES="2", FAKE_TRTEXEC_DLA_FALLBACK="/blocks.0/attn/MatMul,/head/Gemm")
    out = tmp_path / "build.json"
    res = subprocess.run(["bash", str(bundle / "scripts" / "build.sh"), "--no-prompt", "--dla-core", "0",
                          "--json-file", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    sidecar = json.loads(out.read_text())["sidecar"]
    assert sidecar["dla_core"] == 0 and sidecar["trt_version"] == "10.3.0" and sidecar["compute_capability"] == "8.7"
    assert sidecar["build_flags"]["dla"]["gpu_fallback_layers"] == ["/blocks.0/attn/MatMul", "/head/Gemm"]
    assert "--memPoolSize=workspace:2048M" in sidecar["build_flags"]["argv"]  # TensorRT 10's flag, Orin's default
    assert "DLA core 0, GPU fallback: 2 layers" in res.stdout
    res = subprocess.run(["bash", str(bundle / "scripts" / "verify.sh"), "--no-prompt", "--dla-core", "0"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0 and "PASS" in res.stdout, res.stderr
    bench = tmp_path / "bench.json"
    res = subprocess.run(["bash", str(bundle / "scripts" / "bench.sh"), "--no-prompt", "--dla-core", "0", "--runs", "5",
                          "--warmup-ms", "0", "--telemetry-ms", "0", "--json-file", str(bench)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(bench.read_text())
    assert [s["batch"] for s in doc["sections"]] == [1] and doc["env"]["python"].startswith("3.10.")
    assert doc["model"]["width_alignment"] >= 1
