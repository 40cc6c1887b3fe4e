"""Issue 10's device-side reproductions, each as a test: tampered, extended and linked bundles refused by
every entry point (Python and trtexec paths, scripts); a ``numpy.py`` in the bundle never imported; NaN in
golden data refused; a manifest nested 100k deep is bad input (2), not a crash; every exception has its
documented exit status."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from snp_edge.engines.cli import describe_failure, main
from snp_edge.engines.common.errors import MissingPrerequisite, VerificationFailed
from snp_edge.engines.manifest import MANIFEST_NAME, hash_files

from tests.engines.device_fixtures import fake_trtexec, make_bundle
from tests.engines.test_device_cli import run

COMMANDS = [["info"], ["verify", "--backend", "onnxruntime"], ["bench", "--backend", "onnxruntime", "--runs", "1"],
            ["classify", "{bundle}/reference/images/chelsea.png", "--backend", "onnxruntime"],
            ["build", "--builder", "trtexec"], ["bench", "--trtexec"], ["verify", "--backend", "trtexec"],
            ["trtexec-cmd", "--trt-version", "8.2.1"], ["deploy", "--no-prompt"]]


@pytest.fixture
def code_bundle(tmp_path):
    return make_bundle(tmp_path / "bundle", with_code=True, with_images=True)


def _rehash(bundle):
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    manifest["files"] = hash_files(str(bundle))
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))


def _every_entry_point(bundle, tmp_path, message, cwd=None):
    env_extra = {"TRTEXEC": str(fake_trtexec(tmp_path))}
    for cmd in COMMANDS:
        argv = [cmd[0], str(bundle)] + [a.format(bundle=bundle) for a in cmd[1:]]
        res = subprocess.run([sys.executable, "-I", str(bundle / "engines" / "__main__.py")] + argv,
                             cwd=str(cwd or tmp_path), env=dict(os.environ, **env_extra), capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 2, (cmd, res.stderr)
        errors = [line for line in res.stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and message in errors[0] == res.stderr.splitlines()[-1], (cmd, res.stderr)


def test_appended_byte_is_refused_everywhere(code_bundle, tmp_path):
    with open(code_bundle / "model.onnx", "ab") as f:
        f.write(b"\0")
    _every_entry_point(code_bundle, tmp_path, "bundle file model.onnx: sha256 mismatch")


def test_unlisted_numpy_py_is_refused_and_never_imported(code_bundle, tmp_path):
    marker = tmp_path / "imported"
    for name in ("numpy.py", "json.py", "runpy.py", "pkgutil.py"):
        (code_bundle / name).write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
    _every_entry_point(code_bundle, tmp_path, "bundle entry json.py: a file manifest.json does not list",
                       cwd=code_bundle)
    assert not marker.exists()  # the isolated launcher imports nothing from the bundle root
    # `python3 -m engines` from the bundle root: Python itself imports runpy from the current folder first
    # (documented); the bundle root leaves sys.path before any command, so numpy.py is still never imported
    (code_bundle / "runpy.py").unlink()
    (code_bundle / "pkgutil.py").unlink()
    res = subprocess.run([sys.executable, "-m", "engines", "info", "."], cwd=str(code_bundle), capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "bundle entry json.py" in res.stderr
    assert not marker.exists()


@pytest.mark.parametrize("where,message", [
    ("engines/evil.py", "bundle entry engines/evil.py: a file manifest.json does not list"),
    ("engines/__pycache__/evil.cpython-36.pyc", "bundle entry engines/__pycache__/: Python byte code"),
    ("engines/__pycache__/manifest.cpython-36.pyc", "bundle entry engines/__pycache__/: Python byte code"),
    ("engines/evil.pyc", "bundle entry engines/evil.pyc: Python byte code"),
    ("trt-cache/x.py", "bundle entry trt-cache/x.py: a file manifest.json does not list"),
    ("trt-cache/notes.txt", "bundle entry trt-cache/notes.txt: a file manifest.json does not list"),
    ("golden/extra.npy", "bundle entry golden/extra.npy: a file manifest.json does not list"),
    ("results/out.json", "bundle entry results/: a folder manifest.json does not list"),
    ("notes.txt", "bundle entry notes.txt: a file manifest.json does not list"),
])
def test_unlisted_entries_are_refused(code_bundle, where, message):
    path = code_bundle / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    res = run(["info", code_bundle])
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_allowed_unlisted_content(code_bundle):
    """The default writable places (trt-cache/ engines, sidecars, timing caches; result files in the root); the
    device code writes no byte code, even without -B and PYTHONDONTWRITEBYTECODE, in every entry form."""
    (code_bundle / "trt-cache").mkdir()
    for name in ("anything.engine", "anything.engine.json", "timing_gpu_trt8.2.1.cache"):
        (code_bundle / "trt-cache" / name).write_bytes(b"x")
    (code_bundle / "bench.json").write_text("{}")
    (code_bundle / "deploy.log").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for argv, cwd in (([str(code_bundle / "engines" / "__main__.py")], code_bundle.parent),
                      (["-m", "engines"], code_bundle)):
        res = subprocess.run([sys.executable, *argv, "info", str(code_bundle)], cwd=str(cwd),
                             capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode == 0, res.stderr
    assert not list(code_bundle.rglob("__pycache__")) and not list(code_bundle.rglob("*.pyc"))
    assert run(["info", code_bundle]).returncode == 0


@pytest.mark.parametrize("kind", ["file-outside", "dir", "trt-cache", "manifest"])
def test_symbolic_links_are_refused(code_bundle, tmp_path, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    if kind == "file-outside":  # identical bytes: the hash would match, the link must not
        target = outside / "outputs.npy"
        target.write_bytes((code_bundle / "golden" / "outputs.npy").read_bytes())
        (code_bundle / "golden" / "outputs.npy").unlink()
        (code_bundle / "golden" / "outputs.npy").symlink_to(target)
        message = "bundle file golden/outputs.npy: golden/outputs.npy is a symbolic link"
    elif kind == "dir":
        (code_bundle / "golden").rename(outside / "golden")
        (code_bundle / "golden").symlink_to(outside / "golden")
        message = "bundle file golden/inputs.npy: golden is a symbolic link"
    elif kind == "trt-cache":
        (code_bundle / "trt-cache").symlink_to(outside)
        message = "bundle entry trt-cache: a symbolic link (use --cache-dir"
    else:
        (code_bundle / MANIFEST_NAME).rename(outside / MANIFEST_NAME)
        (code_bundle / MANIFEST_NAME).symlink_to(outside / MANIFEST_NAME)
        message = "manifest.json is a symbolic link"
    res = run(["info", code_bundle])
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_manifest_nested_100k_deep_is_bad_input(bundle, capsys):
    (bundle / MANIFEST_NAME).write_text("[" * 100000 + "]" * 100000)
    assert main(["info", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bundle}/manifest.json: JSON nested too deeply\n"


@pytest.mark.parametrize("which", ["outputs", "inputs"])
def test_nan_in_golden_data_is_refused(bundle, which, capsys):
    path = bundle / "golden" / f"{which}.npy"
    arr = np.load(path)
    arr[1, 0] = np.nan
    np.save(path, arr)
    _rehash(bundle)
    assert main(["verify", str(bundle), "--backend", "onnxruntime"]) == 2
    assert f"golden {which} golden/{which}.npy: expected finite float32 values" in capsys.readouterr().err


def test_nan_from_the_model_fails_verification(bundle, capsys):
    """A NaN weight: the model's outputs are NaN, the gate fails (exit 1), it does not pass anything."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(bundle / "model.onnx"))
    w = model.graph.initializer[0]
    arr = numpy_helper.to_array(w).copy()
    arr[0, 0] = np.nan
    w.CopyFrom(numpy_helper.from_array(arr, w.name))
    onnx.save(model, str(bundle / "model.onnx"))
    _rehash(bundle)
    assert main(["verify", str(bundle), "--backend", "onnxruntime"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "engine outputs contain NaN or Inf" in out and "top-k: outputs contain NaN" in out


@pytest.mark.parametrize("exc,status,message", [
    (VerificationFailed("x"), 1, "x"),
    (MissingPrerequisite("no GPU"), 3, "no GPU"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (MemoryError(), 3, "out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "/b/trt-cache/x"), 3, "/b/trt-cache/x: No space left on device"),
    (OSError(errno.EACCES, "Permission denied", "/b"), 2, "/b: Permission denied"),
    (RecursionError(), 2, "input nested too deeply"),
    (RuntimeError("TensorRT internal"), 2, "unexpected RuntimeError: TensorRT internal"),
])
def test_every_exception_has_its_status(exc, status, message):
    got_status, got_message = describe_failure(exc)
    assert got_status == status and got_message.startswith(message)


def test_json_outputs_honour_the_umask(bundle, tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["info", str(bundle), "--json-file", str(tmp_path / "i.json")]) == 0
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "i.json").st_mode & 0o777 == 0o644
