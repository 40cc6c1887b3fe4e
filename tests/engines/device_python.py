"""Real device Pythons for the device-code tests: a CPython of the device's version (pyenv's, or on PATH) with
the library versions that device's users have, in a venv built once under ``.cache/`` and reused; skipped with
the reason where that CPython is not found. Also the host-side references the tests compare against (a bundle
made by the host pipeline, the host's timm/PyTorch top-5) and the isolated launcher."""

import fcntl
import os
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import pytest

from tests.engines.device_fixtures import REPO

DevicePython = namedtuple("DevicePython", "version candidates pip pins")
PYENV = Path(os.path.expanduser("~/.pyenv/versions"))

DEVICE_PYTHONS = {
    # JetPack 4.6 (Jetson Nano): Python 3.6.9; numpy 1.19.5 (1.19.4 on the device itself: 1.19.5 dies with
    # "Illegal instruction" on the Nano's CPU only), the last onnxruntime and Pillow for 3.6; pip 21.3.1, the
    # last pip for 3.6
    # (opencv-python-headless 4.6.0.66: the last cp36 wheel, for engines.sources and the fast preprocessing;
    # JetPack 4.6 ships OpenCV 4.1.1 as python3-opencv)
    "3.6": DevicePython("3.6", (str(PYENV / "3.6.15/bin/python3.6"), "python3.6"), "pip==21.3.1",
                        ("numpy==1.19.5", "onnxruntime==1.10.0", "Pillow==8.4.0",
                         "opencv-python-headless==4.6.0.66")),
    # JetPack 5.1 (Jetson Orin): Python 3.8; numpy 1.24.4 and Pillow 10.4.0, the last for 3.8 (as in
    # docker/Dockerfile.jetson-orin-jp5), onnxruntime 1.16.3 (the Jetson Zoo's JetPack 5 wheels are 1.16/1.17)
    "3.8": DevicePython("3.8", (str(PYENV / "3.8.18/bin/python3.8"), "python3.8"), None,
                        ("numpy==1.24.4", "onnxruntime==1.16.3", "Pillow==10.4.0")),
    # JetPack 6.1 (Jetson Orin): Python 3.10; Ubuntu 22.04's Pillow 9.0.1, numpy 1.21.6 (22.04 has 1.21.5, ONNX
    # Runtime wants >= 1.21.6; TensorRT 10.3's bindings want numpy < 2), onnxruntime 1.18.0 (the Jetson Zoo's
    # JetPack 6 wheel); docker/Dockerfile.jetson-orin installs the same numpy and Pillow
    # OpenCV: JetPack 6 ships 4.8.0; opencv-python-headless 4.8's typing stubs fail on numpy 1.21, so 4.7.0.72
    "3.10": DevicePython("3.10", (str(PYENV / "3.10.13/bin/python3.10"), "python3.10"), None,
                         ("numpy==1.21.6", "onnxruntime==1.18.0", "Pillow==9.0.1",
                          "opencv-python-headless==4.7.0.72")),
    # Raspberry Pi OS Bookworm (Pi 4 / Pi 5, 64-bit): Python 3.11; its python3-numpy 1.24.2 and python3-pil
    # 9.4.0, onnxruntime 1.18.1 from PyPI (aarch64 wheels for 3.11, built against numpy 1.x)
    "3.11": DevicePython("3.11", (str(PYENV / "3.11.7/bin/python3.11"), "python3.11"), None,
                         ("numpy==1.24.2", "onnxruntime==1.18.1", "Pillow==9.4.0")),
}

DEVICE_TARGETS = {"3.6": "jetson-nano", "3.8": "jetson-orin-jp5", "3.10": "jetson-orin",
                  "3.11": "raspberry-pi-5"}  # Python -> its target


def _find(candidates):
    for candidate in candidates:
        path = shutil.which(candidate) if os.sep not in candidate else (candidate if os.path.isfile(candidate) else None)
        if path:
            return path
    return None


class _BuildFailed(Exception):
    pass


def _build(version, base):
    """Build (or reuse) the venv of ``DEVICE_PYTHONS[version]`` from the CPython ``base``; returns its python.
    Plain exceptions only (it also runs in a prefetch thread): :func:`device_venv` turns them into a failure."""
    venv = REPO / ".cache" / ("py" + version.replace(".", ""))
    venv.parent.mkdir(exist_ok=True)
    with open(str(venv) + ".lock", "w") as lock:  # one builder at a time (pytest-xdist workers share the cache)
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(version, base, venv)


def _build_locked(version, base, venv):
    spec = DEVICE_PYTHONS[version]
    ready, python = venv / "snp-edge-ready.txt", venv / "bin" / "python"
    if ready.is_file() and ready.read_text() == "\n".join(spec.pins) and python.is_file():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    steps = [[base, "-m", "venv", str(venv)]]
    if spec.pip:
        steps.append([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec.pip])
    steps.append([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *spec.pins])
    for step in steps:
        res = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            lines = [ln for ln in (res.stderr or res.stdout).splitlines() if ln.strip() and "Location" not in ln]
            raise _BuildFailed(f"building the Python {version} venv failed at {step[2:]}: {lines[-1:] or res.returncode}")
    ready.write_text("\n".join(spec.pins))
    return python


_PREFETCH = {}  # version -> Future of _build, started by prefetch()


def prefetch(versions):
    """Start building the venvs of ``versions`` in background threads (CI builds them from scratch: about a
    minute each, mostly pip's downloads and unpacking), so tests that need them find them ready."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=len(versions) or 1, thread_name_prefix="device-venv")
    for version in versions:
        base = _find(DEVICE_PYTHONS[version].candidates)
        if base is not None and version not in _PREFETCH:
            _PREFETCH[version] = pool.submit(_build, version, base)
    pool.shutdown(wait=False)


def device_venv(version):
    """The venv python of ``DEVICE_PYTHONS[version]`` (``.cache/py36``, ``py38``, ``py310``), built on first use
    (or by :func:`prefetch`): pip pinned first where the device's Python needs an old one, then the pinned
    wheels. Skips with the reason where that CPython is not found."""
    spec = DEVICE_PYTHONS[version]
    base = _find(spec.candidates)
    if base is None:
        pytest.skip("no CPython {} here (looked for {})".format(version, ", ".join(spec.candidates)))
    try:
        future = _PREFETCH.get(version)
        return future.result() if future is not None else _build(version, base)
    except _BuildFailed as exc:
        pytest.fail(str(exc))


def versions_line(python):
    """``"(3, 10) 1.21.6 1.18.0 9.0.1"``: what the venv's Python, numpy, onnxruntime and Pillow are."""
    res = subprocess.run([str(python), "-c", "import sys, numpy, onnxruntime, PIL; print(sys.version_info[:2], "
                          "numpy.__version__, onnxruntime.__version__, PIL.__version__)"],
                         capture_output=True, text=True, timeout=60)
    return res.stdout.strip() or res.stderr


def pinned_versions(version):
    """The expected :func:`versions_line` of ``DEVICE_PYTHONS[version]``."""
    pins = dict(p.split("==") for p in DEVICE_PYTHONS[version].pins)
    major, minor = version.split(".")
    return f"({major}, {minor}) {pins['numpy']} {pins['onnxruntime']} {pins['Pillow']}"


def host_bundle(root, target):
    """A bundle made by the host pipeline (snp-edge bundle: DeiT-Tiny at 64 px, random weights) for ``target``,
    the host's timm/PyTorch model for it, and a JPEG camera-like photo."""
    from PIL import Image
    from snp_edge.export.bundle import make_bundle

    from snp_edge.models import load_model

    handle = load_model("deit_tiny_patch16_224", "random", {"img_size": 64})
    bundle = make_bundle(handle, target, Path(root) / "bundle")
    photo = Path(root) / "photo.jpg"
    Image.open(REPO / "export" / "reference" / "chelsea.png").convert("RGB").resize((640, 427)).save(photo, quality=90)
    return bundle, handle, photo


def host_top5(handle, path):
    """The host's timm eval transform + PyTorch softmax top-5 for the image at ``path``: (ids, probabilities)."""
    import torch
    from PIL import Image
    from timm.data import create_transform

    x = create_transform(**handle.data_config, is_training=False)(Image.open(path).convert("RGB"))
    with torch.no_grad():
        probs = torch.softmax(handle.model.eval()(x[None]).double(), 1)[0]
    values, ids = torch.topk(probs, 5)
    return ids.tolist(), values.tolist()


def launch(python, bundle, *args, cwd=None, env=None):
    """``python -I BUNDLE/engines/__main__.py ARGS``: the bundle scripts' isolated launcher."""
    return subprocess.run([str(python), "-I", str(Path(bundle) / "engines" / "__main__.py"), *map(str, args)],
                          cwd=str(cwd or bundle), capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))
