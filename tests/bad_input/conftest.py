"""The bad-input suite: every class of bad input or fault the reliability audit (issue 10) found, and the
classes that already held, each case asserting the contract of README "Exit statuses":

* the exit status (2 bad input, 1 a gate failed, 3 missing memory, 130 / 143 interrupted / terminated),
* one error line on stderr, ``snp-edge COMMAND: error: ...`` (``error: ...`` for ``python3 -m engines``),
  on a line of its own, naming what is wrong, and no traceback,
* the output location unchanged: nothing created, replaced or left beside it (hidden temporaries included).

Commands run in-process (``snp_edge.cli.main``) on a 32 px, 2-block, 64-wide DeiT ("TINY"), except the cases
about signals and concurrent processes, which run real processes (marked slow).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_ARGS = ["--weights", "random", "--model-arg", "img_size=32", "--model-arg", "patch_size=4", "--model-arg",
             "depth=2", "--model-arg", "embed_dim=64", "--model-arg", "num_heads=2", "--model-arg", "num_classes=10"]
TINY = ["--model", "deit_tiny_patch16_224", *TINY_ARGS]
FAST_PRUNE = ["--target-gmacs", "0.004", "--criterion", "l1"]  # weight-only scores: no calibration pass


@dataclass
class Result:
    status: int
    out: str
    err: str


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones too) -> its kind and content hash, link target, mode."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                found[rel] = "link " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() + f" {path.stat().st_mode:o}"
    return found


def assert_one_line_error(result: Result, status: int, message: str, command: str | None = None) -> str:
    """``status``; the last stderr line is the only error line, contains ``message``; no traceback."""
    err = result.err
    assert result.status == status, (result.status, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no message on stderr"
    last = lines[-1]
    prefix = f"snp-edge {command}: " if command else ""
    assert last.startswith(prefix) and ("error:" in last or "interrupted" in last or "terminated" in last), err
    assert "\r" not in last, f"the error shares a line with a progress bar: {last!r}"
    assert message in last, (message, last)
    assert sum("error:" in line or line.endswith((": interrupted", ": terminated")) for line in lines) == 1, err
    return last


@pytest.fixture
def snp(capsys):
    """``snp-edge ARGV`` in-process -> Result (argv items may be paths)."""
    from snp_edge.cli import main

    def run(*argv: object) -> Result:
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return Result(status, out, err)

    return run


@pytest.fixture
def engines(capsys):
    """``python3 -m engines ARGV`` in-process (the device command line) -> Result."""
    from snp_edge.engines.cli import main

    def run(*argv: object) -> Result:
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            status = exc.code
        out, err = capsys.readouterr()
        return Result(status, out, err)

    return run


@pytest.fixture(scope="session")
def tiny_pruned(tmp_path_factory) -> Path:
    """A pruned TINY folder (weight-only criteria), made once; copy it before changing it."""
    from snp_edge.cli import main

    out = tmp_path_factory.mktemp("bad-input") / "pruned"
    assert main(["prune", *TINY, *FAST_PRUNE, "--out", str(out), "--json"]) == 0
    return out


@pytest.fixture
def work(tmp_path) -> Path:
    """An empty folder each case works in (inputs and outputs), and whose snapshot must not change."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def pruned_copy(tiny_pruned, work) -> Path:
    dest = work / "src"
    shutil.copytree(tiny_pruned, dest)
    return dest


def edit_json(path: Path, change) -> None:
    """Apply ``change(doc)`` to the JSON file ``path`` (NaN allowed in the result)."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.fixture(params=["host", "3.6"])
def python(request) -> str:
    """The interpreter a device-side case runs under: the host's, and a real CPython 3.6 venv (JetPack 4.6's
    numpy, onnxruntime and Pillow; skipped with the reason where that CPython is missing)."""
    if request.param == "host":
        return sys.executable
    from tests.engines.device_python import device_venv

    return str(device_venv("3.6"))


def swap_engine(bundle):
    """The attack: another engine in trt-cache/, its sidecar's engine_sha256 rewritten to match."""
    (engine,) = (bundle / "trt-cache").glob("*.engine")
    data = engine.read_bytes() + b"swapped"
    engine.write_bytes(data)
    sidecar = engine.with_name(engine.name + ".json")
    doc = json.loads(sidecar.read_text())
    doc["engine_sha256"] = hashlib.sha256(data).hexdigest()
    sidecar.write_text(json.dumps(doc))
    return engine
