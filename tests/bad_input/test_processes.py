"""Faults that need real processes: SIGTERM (what `timeout` and `docker stop` send) and Ctrl-C at any moment,
and two commands writing the same output at once. Every case: one line, the documented exit status, and
nothing left beside the output (no hidden temporary folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import FAST_PRUNE, TINY, Result, assert_one_line_error

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
RUN = ["run", *TINY, "--target-gmacs", "0.004", "--criterion", "l1", "--targets", "--references",
       "--backend", "none"]


def _as_in_a_terminal() -> None:
    # a job started with `&` by a non-interactive shell (CI runners, nohup) inherits SIGINT ignored, and Python
    # keeps it ignored: give the child a terminal's default so Ctrl-C is what it would be for a user
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*argv: object) -> subprocess.Popen:
    """``python -m snp_edge ARGV`` (the console script's code) as a process of its own, with SIGINT as a
    terminal's foreground process has it."""
    return subprocess.Popen([sys.executable, "-m", "snp_edge", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=_as_in_a_terminal)


def finish(proc: subprocess.Popen, timeout: float = 240) -> Result:
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out, err)


def wait_for(predicate, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def leftovers(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


@pytest.mark.parametrize("sig, status, word", [(signal.SIGTERM, 143, "terminated"),
                                               (signal.SIGINT, 130, "interrupted")])
def test_signal_during_a_run_leaves_nothing(work, sig, status, word):
    """The signal arrives while `run` writes into its staging folder: exit 143/130, one line, and neither the
    output nor a hidden temporary folder remains."""
    proc = start(*RUN, "--out", work / "X")
    wait_for(lambda: proc.poll() is not None or any((work / n / "pruned").exists() for n in leftovers(work)))
    proc.send_signal(signal.SIGSTOP)  # held mid-run, so a loaded machine cannot let it finish first
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    result = finish(proc)
    assert_one_line_error(result, status, f"snp-edge run: {word}", "run")
    assert os.listdir(work) == []


def test_ctrl_c_while_importing(work):
    """Ctrl-C while numpy and torch import (the signal is sent when ``-X importtime`` reports numpy's first
    module, so it lands inside the imports on any machine load): one line, exit 130, not a traceback. Torch
    swallows a KeyboardInterrupt that lands inside numpy's import and fails later with an ImportError; that
    failure is still reported as the interrupt."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "snp_edge", "prune", *TINY, *FAST_PRUNE,
                             "--out", str(work / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, preexec_fn=_as_in_a_terminal)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "numpy" in line:
            proc.send_signal(signal.SIGINT)
            break
    assert seen and "numpy" in seen[-1], "numpy was never imported"
    result = finish(proc)
    err = [line for line in result.err.splitlines() if not line.startswith("import time:")]
    # 130, or death by SIGINT after the message (Python re-raises a KeyboardInterrupt that lands during the
    # interpreter's own shutdown that way); a shell shows both as $? = 130
    assert result.status in (130, -signal.SIGINT), result.status
    assert err == ["snp-edge prune: interrupted"], err
    assert os.listdir(work) == []


def test_two_runs_into_the_same_output(work):
    """Unique temporary names: two runs at once both work, the second to finish is refused in one line (its
    output appeared meanwhile), the first's output is complete, and nothing else is left. The first run is
    stopped (SIGSTOP) mid-run while the second runs, so the two overlap on any machine load."""
    first = start(*RUN, "--out", work / "X")
    wait_for(lambda: first.poll() is not None or any((work / n / "pruned").exists() for n in leftovers(work)))
    first.send_signal(signal.SIGSTOP)  # the first is held mid-run while the second runs to the end
    assert first.poll() is None, "the first run ended before the second started"
    second = finish(start(*RUN, "--out", work / "X"))
    first.send_signal(signal.SIGCONT)
    results = sorted((second, finish(first)), key=lambda r: r.status)
    assert results[0].status == 0, results[0].err
    assert_one_line_error(results[1], 2, "appeared while this command ran", "run")
    assert os.listdir(work) == ["X"]
    assert sorted(os.listdir(work / "X")) == ["onnx", "pruned", "summary.json"]


def test_concurrent_prunes(work, tiny_pruned):
    """Concurrent prunes (held before issue 10, kept): two into the same folder with --force give one complete
    folder, identical to the same prune made alone, and nothing beside it."""
    procs = [start("prune", *TINY, *FAST_PRUNE, "--out", work / "same", "--force", "--json") for _ in range(2)]
    results = [finish(p) for p in procs]
    assert all(r.status == 0 for r in results), [r.err for r in results]
    assert os.listdir(work) == ["same"]
    for name in ("model.json", "model.safetensors"):
        assert (work / "same" / name).read_bytes() == (tiny_pruned / name).read_bytes()
