"""Environment capture: always succeeds, JSON-serializable, records what it can here."""

import json
import platform

from snp_edge.bench.env import capture_env


def test_capture_env():
    env = capture_env()
    json.dumps(env)
    assert env["versions"]["python"] == platform.python_version()
    assert env["cpu"]["logical_cores"] >= 1
    assert set(env) >= {"os", "cpu", "versions", "gpu", "jetson", "env_vars"}
