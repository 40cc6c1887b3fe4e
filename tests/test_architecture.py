"""The layering, proved on the import graph of the source tree (every import statement, also those inside
functions): device code (``snp_edge.engines``) at the bottom, then the host core (``snp_edge``'s own modules),
then the stages (``snp_edge.export``, ``snp_edge.bench``, ``snp_edge.train``), then the application layer
(``snp_edge.cli``). Nothing imports a layer above its own; neither the host core nor the device code has an
import cycle (lazy imports included); the device code imports nothing of the host and no host-only library.

The graph is read from the files with ``ast``, with pyproject.toml's package-dir mapping (``export/`` is
``snp_edge.export``...), so it sees the tree as the wheel installs it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
DEVICE_THIRD_PARTY = {"numpy", "tensorrt", "pycuda", "cuda", "onnxruntime", "PIL", "cv2"}  # cv2: optional (sources, fast)


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file, for every package of pyproject.toml (with its package-dir mapping)."""
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = tool.get("package-dir", {})
    out = {}
    for package in tool["packages"]:
        folder = root / mapping.get(package, package.replace(".", "/"))
        for path in sorted(folder.glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            out[name] = path
    return out


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (``from a import b`` counts a.b when that
    is a module); other names are returned as their top-level package, prefixed with ``ext:``."""
    is_package = path.stem == "__init__"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [(base, a.name) for a in node.names]
        else:
            continue
        for mod, attr in targets:
            if attr and f"{mod}.{attr}" in modules:
                found.add(f"{mod}.{attr}")
            elif mod in modules:
                found.add(mod)
            elif mod.split(".")[0] in {m.split(".")[0] for m in modules}:
                parent = mod
                while parent and parent not in modules:
                    parent = parent.rpartition(".")[0]
                if parent:
                    found.add(parent)
            else:
                found.add("ext:" + mod.split(".")[0])
    found.discard(name)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    files = module_files(root)
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def layer(module: str) -> str:
    """engines | core | stage | app | main (``__main__`` entry points, which nothing may import)."""
    if module.endswith(".__main__"):
        return "main"
    if module.startswith("snp_edge.engines") or module.startswith("snp_edge.docker"):
        return "engines"
    if module.startswith("snp_edge.cli"):
        return "app"
    if module.startswith(("snp_edge.export", "snp_edge.bench", "snp_edge.train")):
        return "stage"
    return "core"


RANK = {"engines": 0, "core": 1, "stage": 2, "app": 3}


def reachable(g: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in g.get(todo.pop(), ()):
            if not dep.startswith("ext:") and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def violations(g: dict[str, set[str]]) -> list[str]:
    """Every import of a higher layer (or of an entry point), and every cycle among core or device modules."""
    found = []
    for mod, deps in sorted(g.items()):
        for dep in sorted(d for d in deps if not d.startswith("ext:")):
            if layer(dep) == "main":
                found.append(f"{mod} imports the entry point {dep}")
            elif layer(mod) != "main" and RANK[layer(dep)] > RANK[layer(mod)]:
                found.append(f"{mod} ({layer(mod)}) imports {dep} ({layer(dep)})")
    for mod in sorted(m for m in g if layer(m) in ("engines", "core", "stage")):
        if any(layer(d) == "app" for d in reachable(g, mod)):
            found.append(f"{mod} reaches the application layer")
    for name, where in (("core", "the host core"), ("engines", "the device code")):
        inside = {m for m in g if layer(m) == name}
        for mod in sorted(inside):
            if mod in reachable({m: {d for d in g[m] if d in inside} for m in inside}, mod):
                found.append(f"{mod} is on an import cycle inside {where}")
    return found


def test_the_project_is_layered():
    assert violations(graph(REPO)) == []


def test_device_code_imports_only_the_standard_library_and_device_packages():
    g = graph(REPO)
    for mod, deps in g.items():
        if layer(mod) != "engines":
            continue
        external = {d[4:] for d in deps if d.startswith("ext:")} - set(sys.stdlib_module_names)
        assert external <= DEVICE_THIRD_PARTY, (mod, external)
        assert all(d.startswith("ext:") or layer(d) == "engines" for d in deps), (mod, deps)


def test_every_package_folder_is_in_the_graph():
    files = module_files(REPO)
    for folder in ("engines", "engines/common", "export", "bench", "snp_edge", "snp_edge/cli", "snp_edge/train", "snp_edge/criteria"):
        on_disk = {p.resolve() for p in (REPO / folder).glob("*.py")}
        assert on_disk <= {p.resolve() for p in files.values()}, folder


KERNEL = "snp_edge.engines.common"


def test_the_shared_kernel_imports_nothing_else_of_the_device_code():
    """engines/common/ (what host and device both import) stands alone: no import of another engines/ module,
    so importing an exception class or the target table never loads the device application."""
    g = graph(REPO)
    kernel = {m for m in g if m == KERNEL or m.startswith(KERNEL + ".")}
    assert {"errors", "fileio", "schema", "stats", "argtypes", "targets", "runner"} <= {m.rpartition(".")[2] for m in kernel}
    for mod in sorted(kernel):
        outside = {d for d in reachable(g, mod) if d.startswith("snp_edge.") and d not in kernel}
        assert outside == set(), (mod, outside)


@pytest.fixture
def bad_tree(tmp_path: Path) -> Path:
    """A miniature of the layout with the faults this check is for: a stage that imports the application
    layer lazily, and a cycle inside the core held open by function-level imports."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools]\npackages = ["snp_edge", "snp_edge.cli", "snp_edge.export", "snp_edge.engines"]\n'
        '[tool.setuptools.package-dir]\n"snp_edge.export" = "export"\n"snp_edge.engines" = "engines"\n')
    files = {
        "snp_edge/__init__.py": "",
        "snp_edge/arch.py": "def f():\n    from .models import g\n",
        "snp_edge/models.py": "def g():\n    from .summary import h\n",
        "snp_edge/summary.py": "from .arch import f\n",
        "snp_edge/cli/__init__.py": "import argparse\n",
        "export/__init__.py": "",
        "export/bundle.py": "def run():\n    from snp_edge.cli import main\n",
        "engines/__init__.py": "import torch\n",
        "engines/backend.py": "def load():\n    from .runner import run\n",
        "engines/runner.py": "def run():\n    from . import backend\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_the_check_finds_backward_arrows_and_core_cycles(bad_tree):
    found = violations(graph(bad_tree))
    assert "snp_edge.export.bundle (stage) imports snp_edge.cli (app)" in found
    assert "snp_edge.export.bundle reaches the application layer" in found
    assert {f"snp_edge.{m} is on an import cycle inside the host core" for m in ("arch", "models", "summary")} <= set(found)
    assert {f"snp_edge.engines.{m} is on an import cycle inside the device code" for m in ("backend", "runner")} \
        <= set(found)
    assert graph(bad_tree)["snp_edge.engines"] == {"ext:torch"}
