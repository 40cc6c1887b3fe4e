"""The fast loop's guard: a test not marked ``slow`` fails when its call phase costs more than a few seconds.

A test's cost is the smaller of its wall time and its CPU time (this process's and the waited children's,
``os.times``): other processes' load stretches the wall time but not the CPU time, and several torch threads
raise the CPU time but not the wall time, so neither a busy CI machine nor a parallel kernel makes the check
flaky; a test that really is expensive is over on both. Under contention OpenMP's spin-waiting inflates the CPU
time too, so the limit also grows with the machine's load: :data:`LIMIT_S` times the load average per core
(when above 1) times the environment variable ``SNP_EDGE_TEST_TIME_SCALE`` (default 1; a slower machine sets 2
or 3; 0 switches the check off). On a quiet machine a test over 5 s fails; on one shared by five test runs
(load 10 on 2 cores) only one over 25 s does.
"""

from __future__ import annotations

import os
import time

import pytest

LIMIT_S = 5.0  # "slow" means over a few seconds (pyproject.toml's marker); the fast loop aims at ~3 s a test
SCALE_ENV = "SNP_EDGE_TEST_TIME_SCALE"


def load_factor() -> float:
    """The 1-minute load average per core, at least 1 (1 where the platform has none)."""
    try:
        return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    except (AttributeError, OSError):
        return 1.0


def limit_s() -> float:
    """The limit in seconds (0: no check), load included. Raises ValueError on a malformed scale."""
    raw = os.environ.get(SCALE_ENV, "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{SCALE_ENV}={raw!r} is not a number (1 = default limit, 0 = no check)") from None
    if scale < 0:
        raise ValueError(f"{SCALE_ENV}={raw!r} is negative (1 = default limit, 0 = no check)")
    return LIMIT_S * scale * load_factor()


def cpu_s() -> float:
    """CPU seconds used so far by this process and the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Stopwatch:
    """Wall and CPU seconds of one block (``with Stopwatch() as sw: ...; sw.cost``)."""

    def __enter__(self) -> Stopwatch:
        self.wall0, self.cpu0 = time.perf_counter(), cpu_s()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall0, cpu_s() - self.cpu0

    @property
    def cost(self) -> float:
        return min(self.wall, self.cpu)


def verdict(wall: float, cpu: float, slow_marked: bool, limit: float) -> str | None:
    """The failure message for an unmarked test over ``limit`` seconds (None: within it, marked, or no check)."""
    if slow_marked or limit <= 0 or min(wall, cpu) <= limit:
        return None
    return (f"unmarked test took {wall:.1f} s wall / {cpu:.1f} s CPU (limit {limit:.1f} s on both): mark it "
            f"@pytest.mark.slow or make it faster ({SCALE_ENV}=2 doubles the limit on a slow machine)")


_TIMING = pytest.StashKey[Stopwatch]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Time the test's call phase (tests/fast_loop.py)."""
    with Stopwatch() as sw:
        yield
    item.stash[_TIMING] = sw


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fail a passing test not marked slow whose call phase is over the fast loop's limit."""
    outcome = yield
    report = outcome.get_result()
    sw = item.stash.get(_TIMING, None)
    if call.when != "call" or not report.passed or sw is None:
        return
    message = verdict(sw.wall, sw.cpu, item.get_closest_marker("slow") is not None, limit_s())
    if message:
        report.outcome, report.longrepr = "failed", message
