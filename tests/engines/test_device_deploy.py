"""``scripts/deploy.sh`` / ``engines deploy`` and the power session, on real bundles, with stand-ins for
what only a Jetson has (sudo policy, nvpmodel, jetson_clocks: shell scripts logging their calls), trtexec
(fake_trtexec.py) and the GPU identity: exit statuses, the status JSON on success and failure,
idempotence, clocks restored after failures and SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.engines.device_fixtures import fake_trtexec, gpu_python, make_bundle

TOOLS = {
    "sudo": """#!/bin/sh
[ "$1" = "-n" ] || { echo "sudo: would prompt" >&2; exit 1; }
shift
if [ -n "$FAKE_SUDO_PASSWORD" ]; then echo "sudo: a password is required" >&2; exit 1; fi
exec "$@"
""",
    "nvpmodel": """#!/bin/sh
echo "nvpmodel $*" >> "$JETSON_LOG"
if [ "$1" = "-q" ]; then printf 'NV Fan Mode:quiet\\nNV Power Mode: 5W\\n1\\n'; fi
""",
    "jetson_clocks": """#!/bin/sh
echo "jetson_clocks $*" >> "$JETSON_LOG"
if [ "$1" = "--store" ]; then echo stored > "$2"; fi
if [ "$1" = "--restore" ]; then test -f "$2" || exit 1; fi
""",
}


@pytest.fixture
def jetson(tmp_path):
    """PATH with the stand-ins first, their call log, and the environment for the scripts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in TOOLS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    fake_trtexec(bin_dir)
    log = tmp_path / "jetson.log"
    log.write_text("")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", JETSON_LOG=str(log),
               PYTHON=str(gpu_python(tmp_path)))
    env.pop("TRTEXEC", None)
    return env, log


def _calls(log):
    return [line.strip() for line in log.read_text().splitlines() if not line.startswith("nvpmodel -q")]


def _deploy(bundle, env, *flags):
    return subprocess.run(["bash", str(bundle / "scripts" / "deploy.sh"), "--no-prompt", *flags], env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_deploy_ok_idempotent_and_clocks_restored(tmp_path, jetson):
    env, log = jetson
    bundle = make_bundle(tmp_path / "bundle", with_code=True, with_images=True)
    res = _deploy(bundle, env, "--max-perf")
    assert res.returncode == 0, res.stderr
    status = json.loads((bundle / "deploy-status.json").read_text())
    assert status["status"] == "ok" and status["exit_code"] == 0 and status["failed_step"] is None
    assert [s["name"] for s in status["steps"]] == ["bundle", "tensorrt", "gpu", "resources", "power", "build",
                                                    "verify"]
    assert status["engine"].endswith(".engine") and os.path.isfile(status["engine"])
    build = status["steps"][5]["detail"]
    assert build["builder"] == "trtexec" and not build["reused"]
    assert status["steps"][6]["detail"]["preprocessing_max_abs_err"] == 0.0
    assert _calls(log)[:3] == [f"jetson_clocks --store {_stored(log)}", "nvpmodel -m 0", "jetson_clocks"]
    assert _calls(log)[3:] == ["nvpmodel -m 1", f"jetson_clocks --restore {_stored(log)}"]
    again = _deploy(bundle, env)  # idempotent: the engine is reused, nothing rebuilt
    assert again.returncode == 0, again.stderr
    status = json.loads((bundle / "deploy-status.json").read_text())
    assert status["steps"][5]["detail"]["reused"] is True
    assert os.stat(bundle / "deploy-status.json").st_mode & 0o777 == 0o666 & ~_umask()


def _stored(log):
    return log.read_text().split("jetson_clocks --store ")[1].split()[0]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_deploy_verify_failure_is_exit_1_with_the_engine_in_the_status(tmp_path, jetson):
    env, log = jetson
    bundle = make_bundle(tmp_path / "bundle", with_code=True, with_images=True)
    res = _deploy(bundle, dict(env, FAKE_TRTEXEC_NAN="1"), "--max-perf", "--status-file", str(tmp_path / "s.json"))
    assert res.returncode == 1, res.stderr
    assert res.stderr.splitlines()[-1].startswith("error: verification failed: logits: engine outputs contain NaN")
    status = json.loads((tmp_path / "s.json").read_text())
    assert status["status"] == "failed" and status["exit_code"] == 1 and status["failed_step"] == "verify"
    assert status["engine"] and os.path.isfile(status["engine"])
    assert _calls(log)[-2:] == ["nvpmodel -m 1", f"jetson_clocks --restore {_stored(log)}"]  # restored anyway


def test_deploy_sudo_needing_a_password_is_exit_4(tmp_path, jetson):
    env, log = jetson
    bundle = make_bundle(tmp_path / "bundle", with_code=True)
    res = _deploy(bundle, dict(env, FAKE_SUDO_PASSWORD="1"), "--max-perf")
    assert res.returncode == 4, res.stderr
    assert "sudo -n jetson_clocks --store" in res.stderr and "a password is required" in res.stderr
    status = json.loads((bundle / "deploy-status.json").read_text())
    assert status["exit_code"] == 4 and status["failed_step"] == "power" and status["engine"] is None
    assert _calls(log) == []  # nothing was changed


@pytest.mark.parametrize("change,status,step,message", [
    (lambda b: (b / "model.onnx").write_bytes(b"x"), 2, "bundle", "sha256 mismatch"),
    (lambda b: (b / "numpy.py").write_text("raise SystemExit(99)\n"), 2, "bundle", "bundle entry numpy.py"),
])
def test_deploy_bad_bundle_is_exit_2_with_status(tmp_path, jetson, change, status, step, message):
    env, _ = jetson
    bundle = make_bundle(tmp_path / "bundle", with_code=True)
    change(bundle)
    res = _deploy(bundle, env)
    assert res.returncode == status and message in res.stderr
    doc = json.loads((bundle / "deploy-status.json").read_text())
    assert doc["exit_code"] == status and doc["failed_step"] == step and message in doc["error"]


def test_power_session_restores_after_sigterm(tmp_path, jetson):
    env, log = jetson
    bundle = make_bundle(tmp_path / "bundle", with_code=True)
    proc = subprocess.Popen([sys.executable, "-I", str(bundle / "engines" / "__main__.py"), "power-mode",
                             str(bundle), "--max-perf", "--", "sleep", "60"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and "jetson_clocks" not in _calls(log):
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert _calls(log) == [f"jetson_clocks --store {_stored(log)}", "nvpmodel -m 0", "jetson_clocks",
                           "nvpmodel -m 1", f"jetson_clocks --restore {_stored(log)}"]
    assert not os.path.exists(_stored(log))  # the stored-clocks folder is removed too


def test_power_mode_wraps_a_command_and_keeps_its_status(tmp_path, jetson):
    env, log = jetson
    bundle = make_bundle(tmp_path / "bundle", with_code=True)
    res = subprocess.run([sys.executable, "-I", str(bundle / "engines" / "__main__.py"), "power-mode", str(bundle),
                          "--max-perf", "--", "sh", "-c", "exit 7"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 7, res.stderr
    assert _calls(log)[-2:] == ["nvpmodel -m 1", f"jetson_clocks --restore {_stored(log)}"]
    res = subprocess.run([sys.executable, "-I", str(bundle / "engines" / "__main__.py"), "power-mode"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "5W"


ORIN_NANO_CONF = """< PARAM TYPE=FILE NAME=CPU_ONLINE >
CORE_0 /sys/devices/system/cpu/cpu0/online
< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=1 NAME=25W >
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
< POWER_MODEL ID=3 NAME=7W >
< PM_CONFIG DEFAULT=2 >
"""


def test_orin_power_session_uses_the_modules_fastest_mode(tmp_path, jetson):
    """An Orin Nano on JetPack 6.2 (its nvpmodel.conf): MAXN_SUPER is id 2, not 0, and 15W (id 0) is restored."""
    env, log = jetson
    (tmp_path / "bin" / "nvpmodel").write_text(TOOLS["nvpmodel"].replace("5W\\n1", "15W\\n0"))
    conf = tmp_path / "nvpmodel.conf"
    conf.write_text(ORIN_NANO_CONF)
    env = dict(env, SNP_EDGE_NVPMODEL_CONF=str(conf))
    bundle = make_bundle(tmp_path / "bundle", target="jetson-orin-nano", with_code=True)
    launcher = [sys.executable, "-I", str(bundle / "engines" / "__main__.py"), "power-mode"]
    res = subprocess.run(launcher + ["--max-perf", "--", "true"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "setting MAXN_SUPER (nvpmodel -m 2)" in res.stderr
    assert _calls(log) == [f"jetson_clocks --store {_stored(log)}", "nvpmodel -m 2", "jetson_clocks", "nvpmodel -m 0",
                           f"jetson_clocks --restore {_stored(log)}"]
    res = subprocess.run(launcher + ["--json"], env=env, capture_output=True, text=True, timeout=60)
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["power_mode"] == {"mode": "15W", "id": 0} and doc["fastest"] == {"id": 2, "mode": "MAXN_SUPER"}
    assert doc["power_modes"] == {"0": "15W", "1": "25W", "2": "MAXN_SUPER", "3": "7W"}
    assert "modes: 0 15W, 1 25W, 2 MAXN_SUPER, 3 7W (from nvpmodel.conf); fastest: MAXN_SUPER (id 2)" in res.stderr
    res = subprocess.run(["bash", str(bundle / "scripts" / "bench.sh"), "--no-prompt", "--backend", "onnxruntime",
                          "--batch", "1", "--runs", "2", "--warmup", "0", "--telemetry-ms", "0"], env=env,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert "Jetson power mode 15W (this module's fastest: MAXN_SUPER, id 2): pass --max-perf" in res.stderr
