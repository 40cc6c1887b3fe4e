"""The device code under a real CPython 3.6 (JetPack 4.6's Python) with the device's own library versions
(numpy 1.19.5, onnxruntime 1.10.0, Pillow 8.4.0, in a venv cached in .cache/py36): a bundle made by the host
pipeline, then classify (same top-5 as timm/PyTorch on the host, probabilities within 1e-4), the Classifier
from threads, verify, deploy up to the TensorRT step (exit 3, status written), bench, the isolation of the
launcher. Skipped with the reason where no Python 3.6 is found."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.engines.device_python import device_venv, host_top5, launch, pinned_versions, versions_line
from tests.engines.device_python import host_bundle as make_host_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def py36():
    """The venv's python3.6 (tests/engines/device_python.py), built once and reused."""
    return device_venv("3.6")


@pytest.fixture(scope="module", name="host_bundle")
def _host_bundle(tmp_path_factory):
    return make_host_bundle(tmp_path_factory.mktemp("py36"), "jetson-nano")


def test_py36_versions(py36):
    assert versions_line(py36) == pinned_versions("3.6") == "(3, 6) 1.19.5 1.10.0 8.4.0"


def test_classify_matches_the_host_pipeline(py36, host_bundle):
    bundle, handle, photo = host_bundle
    images = [photo] + [bundle / "reference" / "images" / n for n in ("astronaut.png", "rocket.png")]
    res = launch(py36, bundle, "classify", bundle, *images, "--backend", "onnxruntime", "--json")
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
    res = subprocess.run([str(py36), "-m", "engines", "classify", ".", str(photo), "--backend", "onnxruntime",
                          "--json"], cwd=str(bundle), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["results"][0] == doc["results"][0]


def test_classifier_from_threads_under_py36(py36, host_bundle):
    bundle = host_bundle[0]
    code = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from engines import Classifier
from engines.preprocess import load_image
frames = [load_image(sys.argv[1] + "/reference/images/" + n) for n in ("chelsea.png", "coffee.png")]
clf = Classifier(sys.argv[1], backend="onnxruntime", threads=1)
want = [clf.classify(f)[0] for f in frames]
bad = []
def work(i):
    for j in range(4):
        if clf.classify(frames[(i + j) % 2])[0] != want[(i + j) % 2]:
            bad.append(i)
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
assert sys.path[0] != sys.argv[1]  # importing engines took the bundle root off sys.path
print("ok" if not bad else "mismatch")
"""
    res = subprocess.run([str(py36), "-c", code, str(bundle)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_verify_with_onnxruntime(py36, host_bundle, tmp_path):
    bundle = host_bundle[0]
    res = launch(py36, bundle, "verify", bundle, "--backend", "onnxruntime", "--json-file", tmp_path / "v.json")
    assert res.returncode == 0, res.stderr + res.stdout
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["passed"] and report["preprocessing"]["max_abs_err"] == 0.0  # Pillow 8.4 == the host's Pillow
    assert report["preprocessing"]["n"] == 4 and report["top_k"]["max_prob_err"] < 1e-5
    assert report["env"]["python"].startswith("3.6.")


def test_deploy_stops_at_tensorrt_with_status(py36, host_bundle, tmp_path):
    bundle = host_bundle[0]
    status = tmp_path / "status.json"
    env = {"PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "tensorrt" not in p)}
    res = launch(py36, bundle, "deploy", bundle, "--no-prompt", "--status-file", status, env=env)
    assert res.returncode == 3, res.stderr
    assert res.stderr.splitlines()[-1].startswith("error: TensorRT is missing")
    doc = json.loads(status.read_text())
    assert doc["status"] == "failed" and doc["exit_code"] == 3 and doc["failed_step"] == "tensorrt"
    assert [s["name"] for s in doc["steps"] if s["ok"]] == ["bundle"] and doc["engine"] is None


def test_bench_with_onnxruntime(py36, host_bundle, tmp_path):
    bundle = host_bundle[0]
    out = tmp_path / "bench.json"
    res = launch(py36, bundle, "bench", bundle, "--backend", "onnxruntime", "--batch", "1", "--batch", "4",
                  "--warmup", "2", "--runs", "10", "--preprocess", "--json-file", out)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert [s["batch"] for s in doc["sections"]] == [1, 4] and all(s["e2e_ms"]["n"] == 10 for s in doc["sections"])
    assert doc["model"]["base_model"] == "deit_tiny_patch16_224" and doc["model"]["gmacs"] > 0
    assert doc["env"]["python"].startswith("3.6.")


def test_nothing_in_the_bundle_root_is_imported(py36, tmp_path, host_bundle):
    """Issue 10: a numpy.py in the bundle root ran under `python3 -m engines info .`."""
    bundle = tmp_path / "copy"
    shutil.copytree(host_bundle[0], bundle)
    marker = tmp_path / "ran"
    (bundle / "numpy.py").write_text(f"open({str(marker)!r}, 'w').write('numpy.py ran')\n")
    for argv in ([str(py36), "-I", "engines/__main__.py", "info", "."], [str(py36), "-m", "engines", "info", "."]):
        res = subprocess.run(argv, cwd=str(bundle), capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and "bundle entry numpy.py: a file manifest.json does not list" in res.stderr
        assert not marker.exists(), argv
    (bundle / "numpy.py").unlink()
    (bundle / "manifest.json").write_text("[" * 100000 + "]" * 100000)
    res = subprocess.run([str(py36), "-I", "engines/__main__.py", "info", "."], cwd=str(bundle), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and res.stderr == "error: ./manifest.json: JSON nested too deeply\n"


def test_trtexec_verify_under_py36(py36, host_bundle, tmp_path):
    """The trtexec fallback (stand-in trtexec, a Nano's identity) run by the device's own Python."""
    from tests.engines.device_fixtures import fake_trtexec, gpu_python

    bundle = tmp_path / "copy"
    shutil.copytree(host_bundle[0], bundle)
    env = {"TRTEXEC": str(fake_trtexec(tmp_path, py36)), "PYTHON": str(gpu_python(tmp_path, py36))}
    for script in ("build.sh", "verify.sh"):
        res = subprocess.run(["bash", str(bundle / "scripts" / script), "--no-prompt"], capture_output=True,
                             text=True, timeout=300, env=dict(os.environ, **env))
        assert res.returncode == 0, (script, res.stderr)
    assert "PASS" in res.stdout and "preprocessing: 4 reference photographs, max abs err 0" in res.stdout
    assert sys.version_info >= (3, 10)  # the host side of this test; the device side ran under 3.6 above
