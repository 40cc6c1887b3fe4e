"""Builds the host-stage image, only where a Docker engine answers."""

import shutil
import subprocess

import pytest

from tests.engines.device_fixtures import REPO

pytestmark = pytest.mark.docker


def _docker_engine():
    if shutil.which("docker") is None:
        return "no docker client"
    res = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        lines = [ln for ln in (res.stderr or res.stdout).splitlines() if ln.strip()]
        return "docker info failed: " + (lines[-1] if lines else "no output")
    return None


def test_host_image_builds_and_runs():
    reason = _docker_engine()
    if reason:
        pytest.skip(f"no Docker engine here ({reason})")
    tag = "snp-edge-host:test"
    build = subprocess.run(["docker", "build", "-f", "docker/Dockerfile", "-t", tag, "."], cwd=str(REPO),
                           capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stderr[-3000:]
    res = subprocess.run(["docker", "run", "--rm", tag, "--help"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "usage" in res.stdout.lower(), res.stdout + res.stderr
