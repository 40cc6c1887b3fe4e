"""The device code of a jetson-orin bundle under a real CPython 3.10 (JetPack 6's Python) with the library
versions a JetPack 6 user has (numpy 1.21.6, onnxruntime 1.18.0, Pillow 9.0.1, in a venv cached in
.cache/py310): a bundle made by the host pipeline (``snp-edge bundle --target jetson-orin``), then classify
with the ONNX Runtime backend against the host's timm/PyTorch top-5, verify, deploy up to the TensorRT step
(exit 3, status written), the trtexec path of TensorRT 10.3 with a DLA core (stand-in trtexec, an Orin's GPU
identity), bench, and no pycuda anywhere. Skipped with the reason where no Python 3.10 is found."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from tests.engines.device_fixtures import REPO
from tests.engines.device_python import device_venv, host_top5, launch, pinned_versions, versions_line
from tests.engines.device_python import host_bundle as make_host_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def py310():
    return device_venv("3.10")


@pytest.fixture(scope="module")
def orin_bundle(tmp_path_factory):
    return make_host_bundle(tmp_path_factory.mktemp("py310"), "jetson-orin")


def test_py310_versions(py310):
    assert versions_line(py310) == pinned_versions("3.10") == "(3, 10) 1.21.6 1.18.0 9.0.1"
    dockerfile = (REPO / "docker" / "Dockerfile.jetson-orin").read_text()
    assert '"numpy==1.21.6" "Pillow==9.0.1"' in dockerfile  # the container has what was tested


def test_classify_matches_the_host_pipeline(py310, orin_bundle):
    bundle, handle, photo = orin_bundle
    assert json.loads((bundle / "manifest.json").read_text())["onnx"]["opset"] == 17  # TensorRT 10.3's ONNX
    images = [photo] + [bundle / "reference" / "images" / n for n in ("astronaut.png", "rocket.png")]
    res = launch(py310, bundle, "classify", bundle, *images, "--backend", "onnxruntime", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    labels = (bundle / "labels.txt").read_text().splitlines()
    for path, result in zip(images, doc["results"], strict=True):
        ids, probs = host_top5(handle, path)
        assert [t["class_id"] for t in result["top_k"]] == ids
        assert np.allclose([t["prob"] for t in result["top_k"]], probs, atol=1e-4)
        assert [t["label"] for t in result["top_k"]] == [labels[i] for i in ids]
    # the Classifier API, as an application on the Orin imports it
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from engines import Classifier; "
            "from engines.preprocess import load_image; c = Classifier(sys.argv[1], backend='onnxruntime'); "
            "print(c.classify(load_image(sys.argv[2]))[0][0][0]); "
            "print(sorted(m for m in ('pycuda', 'cuda', 'tensorrt', 'torch') if m in sys.modules))")
    res = subprocess.run([str(py310), "-c", code, str(bundle), str(photo)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == [str(doc["results"][0]["top_k"][0]["class_id"]), "[]"]


def test_verify_with_onnxruntime(py310, orin_bundle, tmp_path):
    bundle = orin_bundle[0]
    res = launch(py310, bundle, "verify", bundle, "--backend", "onnxruntime", "--json-file", tmp_path / "v.json")
    assert res.returncode == 0, res.stderr + res.stdout
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["passed"] and report["preprocessing"]["max_abs_err"] == 0.0  # Pillow 9.0.1 == the host's Pillow
    assert report["preprocessing"]["n"] == 4 and report["top_k"]["max_prob_err"] < 1e-5
    assert report["env"]["python"].startswith("3.10.")


def test_deploy_stops_at_tensorrt_with_status(py310, orin_bundle, tmp_path):
    bundle = orin_bundle[0]
    status = tmp_path / "status.json"
    env = {"PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "tensorrt" not in p)}
    res = launch(py310, bundle, "deploy", bundle, "--no-prompt", "--status-file", status, env=env)
    assert res.returncode == 3, res.stderr
    assert res.stderr.splitlines()[-1].startswith("error: TensorRT is missing")
    doc = json.loads(status.read_text())
    assert doc["status"] == "failed" and doc["failed_step"] == "tensorrt" and doc["env"]["python"].startswith("3.10.")
    res = launch(py310, bundle, "deploy", bundle, "--no-prompt", "--dla-core", "2", "--status-file", status, env=env)
    assert res.returncode == 2 and res.stderr.splitlines()[-1].startswith(
        "error: --dla-core 2: jetson-orin modules have at most 2 DLA cores (0, 1)")  # before looking for TensorRT
    doc = json.loads(status.read_text())
    assert doc["failed_step"] == "bundle" and doc["exit_code"] == 2


def test_trtexec_dla_path_under_py310(py310, orin_bundle, tmp_path):
    """build.sh / verify.sh / bench.sh on DLA core 0 through trtexec (TensorRT 10.3's flags and log), run by the
    device's own Python 3.10; the fallback layers land in the sidecar."""
    from tests.engines.device_fixtures import ORIN_IDENTITY, fake_trtexec, gpu_python

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


def test_bench_with_onnxruntime(py310, orin_bundle, tmp_path):
    bundle = orin_bundle[0]
    out = tmp_path / "bench.json"
    res = launch(py310, bundle, "bench", bundle, "--backend", "onnxruntime", "--batch", "1", "--batch", "4",
                 "--warmup", "2", "--runs", "10", "--preprocess", "--json-file", out)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert [s["batch"] for s in doc["sections"]] == [1, 4] and doc["target"] == "jetson-orin"
    assert doc["model"]["width_alignment"] >= 1 and doc["env"]["python"].startswith("3.10.")
