"""Issue 20's device-side reproductions that the other modules run in-process, here as real processes under
the host Python and CPython 3.6 (the device venv) through the bundle's own launcher: each ends in its
documented status with one line, the bundle and every output unchanged."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from snp_edge.engines.manifest import hash_files

from tests.engines.device_fixtures import fake_trtexec, gpu_python, make_bundle

from .conftest import snapshot, swap_engine

pytestmark = pytest.mark.slow


def _rehash(bundle):
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["files"] = hash_files(str(bundle))
    (bundle / "manifest.json").write_text(json.dumps(doc))


def _resize(bundle):
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["preprocess"]["resize"] = 65536
    (bundle / "manifest.json").write_text(json.dumps(doc))


def _zero_golden(bundle):
    np.save(bundle / "golden" / "outputs.npy", np.zeros((8, 10), np.float32))
    _rehash(bundle)


CASES = {
    # id: (change to the bundle, argv after BUNDLE, status, message)
    "resize-65536": (_resize, ["verify", "--backend", "onnxruntime"], 2,
                     "field preprocess.resize: expected at most 8 x crop (32), got 65536"),
    "all-zero-golden": (_zero_golden, ["verify", "--backend", "onnxruntime"], 2,
                        "golden outputs golden/outputs.npy: all 10 logits of input 0 are equal (0)"),
    "json-file-over-golden": (None, ["verify", "--backend", "onnxruntime", "--json-file", "{bundle}/golden/outputs.npy"],
                              2, "--json-file {bundle}/golden/outputs.npy: is golden/outputs.npy of the bundle"),
    "trt-cache-link": (lambda b: ((b / "trt-cache").mkdir(), (b / "trt-cache" / "x.engine").symlink_to("/etc/passwd")),
                       ["verify", "--backend", "onnxruntime"], 2, "bundle entry trt-cache/x.engine: a symbolic link"),
    "runs-huge": (None, ["bench", "--runs", "99999999999999999999999"], 2, "argument --runs"),
}


@pytest.mark.parametrize("case", CASES)
def test_reproduction(python, work, case):
    change, argv, status, message = CASES[case]
    bundle = make_bundle(work / "bundle", with_code=True)
    if change is not None:
        change(bundle)
    before = snapshot(work)
    res = subprocess.run([python, "-I", "-B", str(bundle / "engines" / "__main__.py"), argv[0], str(bundle),
                          *[a.format(bundle=bundle) for a in argv[1:]]], capture_output=True, text=True, timeout=120)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == status and len(lines) == 1 and message.format(bundle=bundle) in lines[0], res.stderr
    assert snapshot(work) == before


def test_swapped_engine_under_the_device_python(python, work, tmp_path):
    """An engine replaced together with its sidecar's engine_sha256: rebuilt by build.sh, refused by bench.sh."""
    bundle = make_bundle(work / "bundle", with_code=True)
    env = dict(os.environ, TRTEXEC=str(fake_trtexec(tmp_path, python)), PYTHON=str(gpu_python(tmp_path, python)))

    def script(name, *flags):
        return subprocess.run(["bash", str(bundle / "scripts" / name), "--no-prompt", *flags], capture_output=True,
                              text=True, timeout=300, env=env)

    assert script("build.sh").returncode == 0
    swap_engine(bundle)
    before = snapshot(work)
    res = script("bench.sh", "--backend", "trtexec", "--runs", "1", "--batch", "1", "--telemetry-ms", "0")
    errors = [line for line in res.stderr.splitlines() if line.startswith("error")]
    assert res.returncode == 2 and len(errors) == 1 and "is not signed with this device's engine key" in errors[0], \
        res.stderr
    assert snapshot(work) == before
    res = script("build.sh")
    assert res.returncode == 0 and "built " in res.stdout, res.stderr
