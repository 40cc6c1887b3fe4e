"""The fast loop's guard (tests/fast_loop.py): an unmarked test over the limit fails, with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fast_loop import LIMIT_S, SCALE_ENV, limit_s, load_factor, verdict

ROOT = Path(__file__).resolve().parents[1]


def test_verdict_uses_the_smaller_of_wall_and_cpu_time():
    assert verdict(wall=9.0, cpu=1.0, slow_marked=False, limit=5.0) is None  # waiting on a loaded machine
    assert verdict(wall=1.0, cpu=9.0, slow_marked=False, limit=5.0) is None  # several threads
    assert "9.0 s wall / 6.0 s CPU" in verdict(wall=9.0, cpu=6.0, slow_marked=False, limit=5.0)
    assert verdict(wall=9.0, cpu=9.0, slow_marked=True, limit=5.0) is None
    assert verdict(wall=9.0, cpu=9.0, slow_marked=False, limit=0.0) is None


def test_limit_scales_with_the_environment(monkeypatch):
    with monkeypatch.context() as m:  # undone before this test's own timing is judged
        m.setenv(SCALE_ENV, "2.5")
        assert limit_s() == 2.5 * LIMIT_S * load_factor()
        assert load_factor() >= 1
        m.setenv(SCALE_ENV, "0")
        assert limit_s() == 0
        m.setenv(SCALE_ENV, "fast")
        with pytest.raises(ValueError, match="is not a number"):
            limit_s()


def test_an_unmarked_busy_test_fails_and_a_marked_one_passes(tmp_path):
    (tmp_path / "conftest.py").write_text("from tests.fast_loop import pytest_runtest_call, "
                                          "pytest_runtest_makereport  # noqa: F401\n")
    (tmp_path / "test_busy.py").write_text(textwrap.dedent("""
        import time
        import pytest

        def busy():
            end = time.process_time() + 0.05
            while time.process_time() < end:
                pass

        def test_unmarked():
            busy()

        @pytest.mark.slow
        def test_marked():
            busy()

        def test_quick():
            pass
    """))
    env = {**os.environ, SCALE_ENV: str(0.05 / LIMIT_S / 100), "PYTHONPATH": str(ROOT)}  # 0.5 ms up to load 200
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                           "ignore::pytest.PytestUnknownMarkWarning", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 2 passed" in proc.stdout
    assert "FAILED test_busy.py::test_unmarked" in proc.stdout
    assert "mark it @pytest.mark.slow or make it faster" in proc.stdout
