"""The package as a user gets it: ruff-clean, its Python floor true, every import declared, one import name,
and a wheel that installs non-editable into a fresh venv and runs prune -> export -> bundle from there."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from tests.test_architecture import REPO, graph, tomllib

HOST_DIRS = ("snp_edge", "export", "bench")
# import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml", "onnx_graphsurgeon": "onnx-graphsurgeon",
                "huggingface_hub": "huggingface_hub", "safetensors": "safetensors"}
DEVICE_ONLY = {"tensorrt", "pycuda", "cuda", "cv2"}  # the trt extra, and OpenCV where present (sources, fast path)
EXTRAS_ONLY = {"modelopt"}  # the int8 extra (nvidia-modelopt); imported only by export/modelopt_worker.py


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.is_file():
        pytest.skip(f"{name} is not installed in this environment (part of the test extra)")
    return str(path)


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_ruff_clean():
    res = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_declared_python_floor_is_true():
    """vermin: nothing in the host code needs a newer Python than requires-python says."""
    floor = _pyproject()["project"]["requires-python"].removeprefix(">=")
    res = subprocess.run([_tool("vermin"), f"-t={floor}-", "--violations", "--no-tips", "--eval-annotations",
                          "--no-parse-comments", *HOST_DIRS], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_import_is_declared():
    project = _pyproject()["project"]
    declared = {d.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].split("!")[0].strip().lower()
                for d in project["dependencies"]}
    assert not [d for d in project["dependencies"] if "==" in d or "<=" in d or "~=" in d], "no patch-level caps"
    used = {dep[4:] for mod, deps in graph(REPO).items() for dep in deps if dep.startswith("ext:")}
    third_party = used - set(sys.stdlib_module_names) - DEVICE_ONLY - EXTRAS_ONLY - {"snp_edge"}
    extras = {d.split("[")[0].lower() for deps in project["optional-dependencies"].values() for d in deps}
    assert "nvidia-modelopt" in extras
    missing = sorted(m for m in third_party if DISTRIBUTION.get(m, m).lower().replace("_", "-") not in
                     {d.replace("_", "-") for d in declared})
    assert missing == [], f"imported but not declared in pyproject.toml: {missing}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return next(out.glob("snp_edge-*.whl"))


def test_wheel_has_one_top_level_name_and_the_bundle_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("snp_edge-")} == {"snp_edge"}
    for needed in ("snp_edge/engines/__main__.py", "snp_edge/engines/scripts/build.sh", "snp_edge/docker/Dockerfile.jetson",
                   "snp_edge/docker/run-jetson.sh", "snp_edge/presets/deit_s_1.3g.yaml", "snp_edge/cli/__init__.py"):
        assert needed in names, needed
    assert not [n for n in names if "/tests/" in n or n.startswith(("bench/", "export/", "engines/"))]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installs_into_a_fresh_venv_and_runs(wheel, tmp_path):
    """Non-editable install into a fresh venv, then the console script from outside the checkout. The venv reads
    its dependencies from this environment's site-packages (a .pth line: no 2 GB reinstalled per run), and
    ``pip check`` there confirms they satisfy the wheel's requirements (test_every_import_is_declared: that
    every import is declared)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site_dir = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site_dir) / "dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    res = subprocess.run([*pip, "install", "-q", "--no-deps", str(wheel)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    res = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    exe = str(venv / "bin" / "snp-edge")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    work = tmp_path / "work"
    work.mkdir()

    def run(*argv: str) -> subprocess.CompletedProcess:
        res = subprocess.run([*argv], cwd=work, capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        return res

    start = time.perf_counter()
    assert "prune" in run(exe, "--help").stdout
    assert time.perf_counter() - start < 5
    run(str(py), "-c", "import snp_edge, sys; assert 'snp_edge/__init__' not in str(snp_edge.__file__) or "
                       "'site-packages' in snp_edge.__file__, snp_edge.__file__")
    tiny = ["--model", "deit_tiny_patch16_224", "--model-arg", "img_size=32", "--model-arg", "patch_size=8",
            "--model-arg", "depth=2",
            "--weights", "random"]
    run(exe, "prune", *tiny, "--target-gmacs", "0.01", "--out", "pruned")
    run(exe, "export", "pruned", "--out", "pruned.onnx")
    run(exe, "bundle", "pruned", "--target", "jetson-nano", "--out", "bundle", "--normalize-in-graph",
        "--flavor", "jetson-inference", "--flavor", "deepstream")
    bundle = work / "bundle"
    assert (bundle / "deepstream" / "config_infer_primary.txt").is_file()
    assert (bundle / "jetson-inference" / "model.onnx").is_file()
    assert (bundle / "golden" / "polygraphy_outputs.json").is_file()
    assert (bundle / "docker" / "Dockerfile.jetson").is_file() and (bundle / "scripts" / "build.sh").is_file()
    info = subprocess.run([str(py), "-m", "engines", "info", "."], cwd=bundle, capture_output=True, text=True,
                          env=env, timeout=120)
    assert info.returncode == 0 and "bundle: . for jetson-nano" in info.stdout, info.stderr


def test_ast_of_host_code_has_no_generic_top_level_imports():
    """No host module imports the folders by their old generic names (bench, export, engines)."""
    for folder in HOST_DIRS + ("engines",):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    assert node.module.split(".")[0] not in ("bench", "export", "engines"), (path, node.module)
                if isinstance(node, ast.Import):
                    assert all(a.name.split(".")[0] not in ("bench", "export", "engines") for a in node.names), path
