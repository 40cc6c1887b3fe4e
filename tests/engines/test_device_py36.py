"""The device code under a real CPython 3.6 (JetPack 4.6's Python) with the device's own library versions
(numpy 1.19.5, onnxruntime 1.10.0, Pillow 8.4.0, in a venv cached in .cache/py36) on a jetson-nano bundle made
by the host pipeline: the Classifier from threads, the isolation of the launcher, the trtexec fallback.
Classify, verify, deploy and bench under 3.6 (and 3.10): test_device_pythons.py. Skipped with the reason
where no Python 3.6 is found."""

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(name="host_bundle")
def _host_bundle(host_bundles):
    return host_bundles("jetson-nano")


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
    assert res.returncode == 2 and res.stderr == f"error: {bundle}/manifest.json: JSON nested too deeply\n"


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
