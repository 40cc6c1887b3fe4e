"""Issue 20, point 1: byte code and edited modules cannot run before the bundle checks itself. Each case runs
real processes under the host Python and CPython 3.6 (the device venv): crafted ``__pycache__`` files whose
header matches the source (as ``cp -a`` / ``rsync -a`` keep it), an edited listed module, an unlisted
``numpy.py``, through the launcher, ``python3 -m engines``, a stage script and the ``Classifier`` API. Each
asserts status 2, one line, nothing of the attacker's code run and the bundle unchanged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.engines.device_fixtures import make_bundle

from .conftest import snapshot

pytestmark = pytest.mark.slow

CRAFT = r"""
import importlib.util, os, sys
import importlib._bootstrap_external as be
src, marker = sys.argv[1], sys.argv[2]
code = compile("open({!r}, 'a').write('ran ' + __name__)\nraise SystemExit(0)\n".format(marker), src, "exec")
st = os.stat(src)
if hasattr(be, "_code_to_timestamp_pyc"):
    data = be._code_to_timestamp_pyc(code, st.st_mtime, st.st_size)
else:  # 3.6
    data = be._code_to_bytecode(code, st.st_mtime, st.st_size)
cfile = importlib.util.cache_from_source(src)
os.makedirs(os.path.dirname(cfile), exist_ok=True)
open(cfile, "wb").write(data)
"""


@pytest.fixture
def code_bundle(tmp_path) -> Path:
    return make_bundle(tmp_path / "bundle", with_code=True, with_images=True)


def _craft(python: str, source: Path, marker: Path) -> None:
    res = subprocess.run([python, "-c", CRAFT, str(source), str(marker)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def _one_line(res, message: str) -> None:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and len([x for x in lines if "error" in x.lower()]) == 1, res.stderr
    assert lines[-1].startswith("error: ") and message in lines[-1], res.stderr


def _entry_points(python: str, bundle: Path):
    """(name, argv, cwd, env) of every Python entry point into a bundle."""
    image = str(bundle / "reference" / "images" / "chelsea.png")
    api = ("import sys; sys.path.insert(0, sys.argv[1]); from engines import Classifier; "
           "print(Classifier(sys.argv[1], backend='onnxruntime').classify([__import__('numpy').zeros((8, 8, 3), "
           "'uint8')]))")
    return [
        ("launcher", [python, "-I", "-B", str(bundle / "engines" / "__main__.py"), "classify", str(bundle), image,
                      "--backend", "onnxruntime"], bundle.parent, {}),
        ("launcher without -I", [python, str(bundle / "engines" / "__main__.py"), "info", str(bundle)], bundle, {}),
        ("-m engines", [python, "-B", "-m", "engines", "verify", ".", "--backend", "onnxruntime"], bundle, {}),
        ("script", ["bash", str(bundle / "scripts" / "verify.sh"), "--backend", "onnxruntime"], bundle.parent,
         {"PYTHON": python}),
        ("api", [python, "-B", "-c", api, str(bundle)], bundle.parent, {}),
    ]


def _run_all(python: str, bundle: Path, message: str, marker: Path) -> None:
    before = snapshot(bundle)
    for name, argv, cwd, env in _entry_points(python, bundle):
        res = subprocess.run(argv, cwd=str(cwd), capture_output=True, text=True, timeout=180,
                             env=dict(os.environ, **env))
        assert not marker.exists(), (name, marker.read_text())
        if name == "api":  # the API raises the bootstrap's error: one line of it ends the traceback
            assert res.returncode == 1 and message in res.stderr.splitlines()[-1], (name, res.stderr)
            assert "BundleIntegrityError" in res.stderr.splitlines()[-1], res.stderr
        else:
            _one_line(res, message)
        assert snapshot(bundle) == before, name


@pytest.mark.parametrize("module", ["manifest", "cli", "_bootstrap", "classify", "__main__"])
def test_crafted_byte_code_never_runs(python, code_bundle, tmp_path, module):
    """Issue 20 #1: a matching-header ``engines/__pycache__/MODULE.cpython-XY.pyc`` plus a swapped model and an
    unlisted numpy.py: every entry point refuses the byte code (status 2) and runs none of it."""
    marker = tmp_path / "ran"
    _craft(python, code_bundle / "engines" / f"{module}.py", marker)
    (code_bundle / "numpy.py").write_text(f"open({str(marker)!r}, 'a').write('numpy')\n")
    _run_all(python, code_bundle, "bundle entry engines/__pycache__/: Python byte code", marker)


def test_edited_module_never_runs(python, code_bundle, tmp_path):
    """Issue 20 #1 (related): an edited listed module is refused before any of it runs."""
    marker = tmp_path / "ran"
    with open(code_bundle / "engines" / "cli.py", "a") as f:
        f.write(f"\nopen({str(marker)!r}, 'a').write('cli')\n")
    _run_all(python, code_bundle, "bundle file engines/cli.py: sha256 mismatch", marker)


def test_safe_loader_form(python, code_bundle, tmp_path):
    """``runpy.run_path(BUNDLE/engines/__main__.py, run_name=...)``: the checked package, for applications."""
    code = ("import runpy, sys, numpy; ns = runpy.run_path(sys.argv[1] + '/engines/__main__.py', "
            "run_name='engines_loader'); clf = ns['package'].Classifier(sys.argv[1], backend='onnxruntime'); "
            "print(clf.classify([numpy.zeros((8, 8, 3), 'uint8')], top_k=1)[0][0][0])")
    res = subprocess.run([python, "-B", "-c", code, str(code_bundle)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().isdigit(), res.stderr
    (code_bundle / "engines" / "extra.py").write_text("")
    res = subprocess.run([python, "-B", "-c", code, str(code_bundle)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "bundle entry engines/extra.py" in res.stderr.splitlines()[-1], res.stderr
