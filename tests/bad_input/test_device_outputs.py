"""Issue 20 #2 (an engine replaced together with its sidecar's sha256) and #3 (the tools writing over the bundle's
own files): status 2, one line, the bundle and every output unchanged; under the host Python and CPython 3.6."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from snp_edge.engines import envinfo

from tests.engines.device_fixtures import NANO_IDENTITY, fake_trtexec, make_bundle

from .conftest import assert_one_line_error, snapshot, swap_engine


@pytest.fixture
def trtexec_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TRTEXEC", str(fake_trtexec(tmp_path)))
    monkeypatch.setattr(envinfo, "device_identity",
                        lambda trt_version=None: dict(NANO_IDENTITY, trt_version=trt_version or "8.2.1"))
    monkeypatch.setattr(envinfo, "tensorrt_version", lambda: None)


def test_swapped_engine_with_forged_sidecar_is_not_trusted(engines, work, trtexec_env):
    bundle = make_bundle(work / "bundle")
    assert engines("build", bundle, "--builder", "trtexec").status == 0
    engine = swap_engine(bundle)
    before = snapshot(work)
    for argv in (["bench", "--trtexec", "--runs", "1", "--batch", "1"], ["verify", "--backend", "trtexec"]):
        assert_one_line_error(engines(argv[0], bundle, *argv[1:]), 2,
                              f"engine {engine}: its sidecar is not signed with this device's engine key")
        assert snapshot(work) == before
    result = engines("build", bundle, "--builder", "trtexec")  # not reused: built again, signed
    assert result.status == 0 and result.out.startswith("built "), result.err
    assert engines("bench", bundle, "--trtexec", "--runs", "1", "--batch", "1").status == 0


def test_engine_key_from_another_device(engines, work, trtexec_env, monkeypatch, tmp_path):
    """An engine (and sidecar) copied from another device, or built under another key: rebuilt, not run."""
    bundle = make_bundle(work / "bundle")
    assert engines("build", bundle, "--builder", "trtexec").status == 0
    monkeypatch.setenv("SNP_EDGE_ENGINE_KEY", str(tmp_path / "other-device-key"))
    assert_one_line_error(engines("verify", bundle, "--backend", "trtexec"), 2, "is not signed with this device's")
    result = engines("build", bundle, "--builder", "trtexec")
    assert result.status == 0 and result.out.startswith("built ")


@pytest.mark.parametrize("command,flag,target", [
    ("info", "--json-file", "manifest.json"),
    ("verify", "--json-file", "golden/outputs.npy"),
    ("verify", "--json-file", "labels.txt"),
    ("info", "--json-file", "model.onnx"),
    ("deploy", "--status-file", "model.onnx"),
    ("deploy", "--status-file", "manifest.json"),
    ("build", "--timing-cache", "model.onnx"),
])
def test_outputs_never_overwrite_the_bundle(engines, work, command, flag, target):
    """Issue 20 #3: `info b --json-file b/manifest.json` exited 0 and the bundle was lost."""
    bundle = make_bundle(work / "bundle")
    extra = ["--backend", "onnxruntime"] if command == "verify" else ["--no-prompt"] if command == "deploy" else []
    before = snapshot(work)
    result = engines(command, bundle, flag, bundle / target, *extra)
    assert_one_line_error(result, 2, f"{flag} {bundle / target}: is {target} of the bundle")
    assert snapshot(work) == before


@pytest.mark.parametrize("target,message", [
    ("golden/new.json", "the bundle {root} would refuse golden/new.json"),
    ("results/x.json", "the bundle {root} would refuse results/x.json"),
    ("notes.txt", "the bundle {root} would refuse notes.txt"),
])
def test_outputs_never_break_the_bundle(engines, work, target, message):
    bundle = make_bundle(work / "bundle")
    before = snapshot(work)
    result = engines("info", bundle, "--json-file", bundle / target)
    assert_one_line_error(result, 2, message.format(root=bundle))
    assert snapshot(work) == before


def test_result_files_in_the_bundle_root_still_work(engines, work):
    bundle = make_bundle(work / "bundle")
    assert engines("info", bundle, "--json-file", bundle / "info.json").status == 0
    assert json.loads((bundle / "info.json").read_text())["engines"] == []
    assert engines("verify", bundle, "--backend", "onnxruntime").status == 0


@pytest.mark.slow
def test_outputs_under_the_device_python(python, work, tmp_path):
    bundle = make_bundle(work / "bundle", with_code=True)
    before = snapshot(work)
    for argv in (["info", str(bundle), "--json-file", str(bundle / "manifest.json")],
                 ["deploy", str(bundle), "--no-prompt", "--status-file", str(bundle / "model.onnx")]):
        res = subprocess.run([python, "-I", "-B", str(bundle / "engines" / "__main__.py"), *argv],
                             capture_output=True, text=True, timeout=120)
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.returncode == 2 and len(lines) == 1 and "of the bundle" in lines[0], res.stderr
        assert snapshot(work) == before


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/sys") or os.access("/sys", os.W_OK) and os.geteuid() != 0,
                    reason="needs a folder no one may create files in (/sys)")
def test_deploy_status_into_a_read_only_folder_is_one_line(python, work, tmp_path):
    """Issue 20 #8: `deploy --status-file` into a read-only folder printed two error lines (sysfs: no one,
    root included, may create a file there)."""
    bundle = make_bundle(work / "bundle", with_code=True)
    before = snapshot(work)
    res = subprocess.run([python, "-I", "-B", str(bundle / "engines" / "__main__.py"), "deploy", str(bundle),
                          "--no-prompt", "--status-file", "/sys/status.json"], capture_output=True, text=True,
                         timeout=120)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith("error: --status-file /sys/status.json: cannot write in /sys"), res.stderr
    assert snapshot(work) == before and not os.path.exists("/sys/status.json")
