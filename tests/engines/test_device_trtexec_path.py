"""The trtexec path end to end on a real bundle, with a stand-in trtexec (this machine has no TensorRT; the
stand-in computes with ONNX Runtime and writes trtexec's own formats) and a Jetson Nano's GPU identity (no
GPU here): same cache key and sidecar as the Python builder, reuse and --force, verify with NaN refused,
the bench sweep from --exportTimes, failures as one line, SIGTERM leaving nothing, and scripts/build.sh."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from snp_edge.engines import envinfo
from snp_edge.engines.build import engine_path_for
from snp_edge.engines.cli import main
from snp_edge.engines.manifest import load_manifest
from snp_edge.engines.profiles import resolve_profile

from tests.engines.device_fixtures import NANO_IDENTITY, fake_trtexec, gpu_python, make_bundle


@pytest.fixture
def trtexec_env(tmp_path, monkeypatch):
    log = tmp_path / "trtexec.log"
    monkeypatch.setenv("TRTEXEC", str(fake_trtexec(tmp_path)))
    monkeypatch.setenv("FAKE_TRTEXEC_LOG", str(log))
    monkeypatch.setattr(envinfo, "device_identity",
                        lambda trt_version=None: dict(NANO_IDENTITY, trt_version=trt_version or "8.2.1"))
    monkeypatch.setattr(envinfo, "tensorrt_version", lambda: None)  # as on a machine without the bindings
    return log


def _calls(log, flag):
    return [json.loads(line) for line in log.read_text().splitlines() if any(a.startswith(flag) for a in json.loads(line))]


def _leftovers(folder):
    return [p.name for p in folder.rglob("*") if ".tmp-" in p.name or p.name.endswith((".partial", ".scratch"))]


def test_trtexec_build_has_the_python_builders_key_and_sidecar(bundle, tmp_path, trtexec_env):
    out = tmp_path / "build.json"
    assert main(["build", str(bundle), "--json-file", str(out)]) == 0  # auto: no bindings -> trtexec
    manifest = load_manifest(str(bundle))
    expected = engine_path_for(manifest, resolve_profile(manifest), "fp16", str(bundle / "trt-cache"), NANO_IDENTITY)
    result = json.loads(out.read_text())
    assert result["engine"] == expected and not result["reused"]
    sc = result["sidecar"]
    assert sc["builder"] == "trtexec" and sc["trt_version"] == "8.2.1" and sc["gpu_name"] == "NVIDIA Tegra X1"
    assert sc["cache_key"] == os.path.basename(expected)[:-len(".engine")]
    assert "--fp16" in sc["build_flags"]["argv"] and "--maxShapes=input:8x3x4x4" in sc["build_flags"]["argv"]
    for path in (expected, expected + ".json", str(out)):
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()
    assert main(["build", str(bundle)]) == 0  # reused: trtexec not run again
    assert len(_calls(trtexec_env, "--onnx")) == 1
    assert main(["build", str(bundle), "--force"]) == 0  # --force rebuilds
    assert len(_calls(trtexec_env, "--onnx")) == 2
    assert _leftovers(bundle) == []


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_trtexec_verify_passes_and_refuses_nan(bundle, tmp_path, trtexec_env, monkeypatch, capsys):
    assert main(["build", str(bundle)]) == 0
    assert main(["verify", str(bundle), "--json-file", str(tmp_path / "v.json")]) == 0
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["passed"] and report["backend"]["backend"] == "trtexec"
    assert 0 < report["report"]["max_abs_err"] < 1e-4  # 6 significant digits from --exportOutput
    assert report["top_k"]["passed"]
    runs = _calls(trtexec_env, "--exportOutput")
    assert len(runs) == 1 and "--shapes=input:8x3x4x4" in runs[0]  # 8 golden rows in one chunk of max 8
    monkeypatch.setenv("FAKE_TRTEXEC_NAN", "1")
    capsys.readouterr()
    assert main(["verify", str(bundle)]) == 1
    assert "engine outputs contain NaN or Inf" in capsys.readouterr().out
    assert _leftovers(bundle) == []


def test_trtexec_bench_sweep(bundle, tmp_path, trtexec_env):
    assert main(["build", str(bundle)]) == 0
    out = tmp_path / "bench.json"
    assert main(["bench", str(bundle), "--runs", "20", "--warmup-ms", "20", "--telemetry-ms", "0",
                 "--json-file", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "snp-edge-device-bench/3" and doc["model"]["gmacs"] == 0.001
    assert [s["batch"] for s in doc["sections"]] == [1, 2, 4, 8]
    for s in doc["sections"]:
        assert s["gpu_ms"]["n"] == 20 and s["e2e_ms"]["n"] == 20  # the warm-up records are dropped
        assert s["e2e_ms"]["median"] == pytest.approx(s["gpu_ms"]["median"] + 0.5)
    timing = _calls(trtexec_env, "--exportTimes")
    assert len(timing) == 4 and "--noDataTransfers" not in timing[0]  # end-to-end needs the copies


def test_trtexec_failure_is_one_line_and_leaves_nothing(bundle, trtexec_env, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_TRTEXEC_FAIL", "1")
    assert main(["build", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: trtexec build failed (exit 1): [11/26/2026-10:00:01] [E] Error[4]")
    assert err.count("\n") == 1
    assert not (bundle / "trt-cache").exists() or sorted(os.listdir(bundle / "trt-cache")) == []


def _code_bundle(tmp_path):
    return make_bundle(tmp_path / "bundle", with_code=True)


def test_build_sh_with_trtexec_json_and_force(tmp_path):
    """The old fallback eval'ed trtexec-cmd's output (exit 127 with --json X) and refused --force."""
    bundle = _code_bundle(tmp_path)
    env = dict(os.environ, TRTEXEC=str(fake_trtexec(tmp_path)), PYTHON=str(gpu_python(tmp_path)))
    script = str(bundle / "scripts" / "build.sh")
    res = subprocess.run(["bash", script, "--no-prompt", "--json-file", str(tmp_path / "b.json")], env=env,
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    first = json.loads((tmp_path / "b.json").read_text())
    assert first["sidecar"]["builder"] == "trtexec" and os.path.isfile(first["engine"])
    res = subprocess.run(["bash", script, "--force", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    again = json.loads(res.stdout.strip().splitlines()[-1])
    assert again["engine"] == first["engine"] and not again["reused"]
    res = subprocess.run(["bash", script, "--no-such-flag"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "unrecognized arguments: --no-such-flag" in res.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on the device")
def test_sigterm_during_build_leaves_no_temporary_files(tmp_path):
    bundle = _code_bundle(tmp_path)
    env = dict(os.environ, TRTEXEC=str(fake_trtexec(tmp_path)), FAKE_TRTEXEC_SLEEP="60")
    proc = subprocess.Popen([str(gpu_python(tmp_path)), "-I", str(bundle / "engines" / "__main__.py"), "build",
                             str(bundle)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cache = bundle / "trt-cache"
    deadline = time.time() + 60
    while time.time() < deadline and not (cache.is_dir() and any(".partial" in p.name for p in cache.iterdir())):
        time.sleep(0.1)
    assert any(".partial" in p.name for p in cache.iterdir()), "the build never started"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "error: terminated"
    assert sorted(p.name for p in cache.iterdir()) == []  # engine, timing cache and staging files: gone
