"""Issue 22 point 2: the stage scripts exec their Python, so SIGTERM to a script's PID stops the work (the
Python command and its tegrastats) with status 143; the container run scripts run docker with ``--init``."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.engines.device_fixtures import REPO, make_bundle
from tests.engines.test_device_telemetry import NANO

TEGRASTATS = """#!{python}
import os, sys, time
open(os.environ["TEGRASTATS_PID"], "w").write(str(os.getpid()))
interval = float(sys.argv[sys.argv.index("--interval") + 1]) / 1000.0
while True:
    print({line!r}, flush=True)
    time.sleep(interval)
"""


def _alive(pid):
    """True while ``pid`` runs (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def sigterm_ends_the_stage(tmp_path, python):
    """bench.sh (ONNX Runtime, tegrastats stand-in) run by ``python``, SIGTERM to the script's PID: the script's
    PID is Python itself, which exits 143 and stops tegrastats."""
    bundle = make_bundle(tmp_path / "bundle", with_code=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tegrastats").write_text(TEGRASTATS.format(python=sys.executable, line=NANO))
    (bin_dir / "tegrastats").chmod(0o755)
    pid_file = tmp_path / "tegrastats.pid"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", TEGRASTATS_PID=str(pid_file), PYTHON=str(python))
    proc = subprocess.Popen(["bash", str(bundle / "scripts" / "bench.sh"), "--no-prompt", "--backend", "onnxruntime",
                             "--batch", "1", "--warmup", "0", "--runs", "1000000", "--telemetry-ms", "50"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not (pid_file.exists() and pid_file.read_text()):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1]  # the stage is still running (not refused)
        tegrastats = int(pid_file.read_text())
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        assert argv[1:4] == [b"-I", b"-B", str(bundle / "engines" / "__main__.py").encode()]  # bash exec'd Python
        assert _alive(tegrastats)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and err.splitlines()[-1] == "error: terminated", err
    deadline = time.time() + 10
    while time.time() < deadline and _alive(tegrastats):
        time.sleep(0.05)
    assert not _alive(tegrastats)


@pytest.mark.slow
def test_sigterm_to_a_stage_script_ends_python_and_tegrastats(tmp_path):
    sigterm_ends_the_stage(tmp_path, sys.executable)


@pytest.mark.parametrize("script,target", [("run-jetson.sh", "jetson-nano"), ("run-x86.sh", "rtx3090")])
def test_container_scripts_run_docker_with_init(tmp_path, script, target):
    """``docker stop`` sends SIGTERM to PID 1: with --init that is tini, which forwards it to the stage."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    (bin_dir / "docker").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{log}"\n')
    (bin_dir / "docker").chmod(0o755)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(f'{{"target": "{target}"}}')
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    res = subprocess.run(["bash", str(REPO / "docker" / script), str(bundle), "bench", "--runs", "5"], env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    argv = log.read_text().splitlines()
    assert argv[:3] == ["run", "--rm", "--init"] and "scripts/bench.sh" in argv and argv[-2:] == ["--runs", "5"]
