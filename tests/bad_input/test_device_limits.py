"""Issue 20 #6: nothing hangs. Upper bounds on the device side's numeric options, a manifest resize that would
exhaust memory refused before any allocation, a FIFO given as an image refused instead of read forever; each
status 2 with one line, under the host Python and CPython 3.6."""

from __future__ import annotations

import os
import subprocess

import pytest
from snp_edge.engines.common.errors import MissingPrerequisite, UserError
from snp_edge.engines.memory import check_memory
from snp_edge.engines.preprocess import resized_size

from tests.engines.device_fixtures import make_bundle

from .conftest import assert_one_line_error, edit_json, snapshot

HUGE = "99999999999999999999999"


@pytest.mark.parametrize("argv,message", [
    (["bench", "--runs", HUGE], f"argument --runs: {HUGE} is outside [1, 1000000]"),
    (["bench", "--warmup", HUGE], f"argument --warmup: {HUGE} is outside [0, 100000]"),
    (["bench", "--batch", "100000"], "argument --batch: 100000 is outside [1, 4096]"),
    (["bench", "--telemetry-ms", "1e9"], "argument --telemetry-ms: expected an integer, got '1e9'"),
    (["bench", "--threads", "100000"], "argument --threads: 100000 is outside [1, 1024]"),
    (["bench", "--warmup-ms", "1e300"], "argument --warmup-ms: 1e+300 is outside [0.0, 3600000.0]"),
    (["build", "--workspace-mib", HUGE], "argument --workspace-mib"),
    (["build", "--max-batch", "5000"], "argument --max-batch: 5000 is outside [1, 4096]"),
    (["build", "--dla-core", "99"], "argument --dla-core: 99 is outside [0, 15]"),
    (["classify", "x.png", "--top-k", HUGE], "argument --top-k"),
    (["verify", "--atol-frac", "1e9"], "argument --atol-frac"),
    (["trtexec-cmd", "--runs", HUGE], "argument --runs"),
])
def test_numeric_options_have_upper_bounds(engines, work, argv, message):
    bundle = make_bundle(work / "bundle")
    before = snapshot(work)
    result = engines(argv[0], bundle, *argv[1:])
    assert_one_line_error(result, 2, message)
    assert snapshot(work) == before


def test_manifest_resize_65536_is_refused(engines, work):
    bundle = make_bundle(work / "bundle", with_images=True)
    edit_json(bundle / "manifest.json", lambda m: m["preprocess"].__setitem__("resize", 65536))
    before = snapshot(work)
    assert_one_line_error(engines("verify", bundle, "--backend", "onnxruntime"), 2,
                          "field preprocess.resize: expected at most 8 x crop (32), got 65536")
    assert snapshot(work) == before


def test_resize_is_checked_before_any_allocation(tmp_path):
    spec = {"resize": 65536, "resize_mode": "shorter_side"}
    with pytest.raises(UserError, match="preprocess.resize 65536 makes a 640x480 px frame 87381x65536 px"):
        resized_size(640, 480, spec)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 4000 kB\nMemAvailable: 1024 kB\n")
    with pytest.raises(MissingPrerequisite, match="resize needs 2.0 MiB, this machine has 1.0 MiB available"):
        check_memory(2 << 20, "resize", str(meminfo))
    check_memory(1 << 20, "resize", str(meminfo))  # fits


@pytest.mark.slow
def test_fifo_image_does_not_block(python, work, tmp_path):
    """`classify b fifo.png` blocked forever reading the FIFO; a huge --runs ran past 240 s."""
    bundle = make_bundle(work / "bundle", with_code=True)
    fifo = tmp_path / "fifo.png"  # outside `work`: its snapshot would read the FIFO
    os.mkfifo(fifo)
    before = snapshot(work)
    for argv, message in (
            (["classify", str(bundle), str(fifo), "--backend", "onnxruntime"],
             f"error: {fifo}: not a regular file (a FIFO, device or folder); give an image file"),
            (["bench", str(bundle), "--runs", HUGE], f"argument --runs: {HUGE} is outside [1, 1000000]")):
        res = subprocess.run([python, "-I", "-B", str(bundle / "engines" / "__main__.py"), *argv],
                             capture_output=True, text=True, timeout=60)
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.returncode == 2 and len(lines) == 1 and message in lines[0], res.stderr
    assert snapshot(work) == before
