"""``python3 -m engines`` as a user runs it, on real bundles, on this machine without TensorRT: exit codes,
one-line errors, no partial files, trtexec command lines, and the bundle's own copy of engines/."""

import json
import os
import subprocess
import sys

import pytest
from snp_edge.engines.cli import main

from tests.engines.device_fixtures import REPO, make_bundle


def run(args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=str(REPO) if cwd == REPO else "")
    return subprocess.run([sys.executable, "-m", "engines"] + [str(a) for a in args], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=60)


def _has_tensorrt():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def test_info_without_tensorrt(bundle, tmp_path):
    out = tmp_path / "info.json"
    res = run(["info", bundle, "--json-file", out])
    assert res.returncode == 0, res.stderr
    assert f"bundle: {bundle} for jetson-nano, tiny-test" in res.stdout
    assert "notice: random weights" in res.stdout and "engines in" in res.stdout
    data = json.loads(out.read_text())
    assert data["manifest"]["target"] == "jetson-nano" and "python" in data["env"]
    res = run(["info", bundle, "--json"])  # the same object as the last line of stdout, text on stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {**data, "env": json.loads(res.stdout)["env"]}
    assert "engines in" in res.stderr


def test_old_json_path_spelling_still_writes_the_file(bundle, tmp_path):
    res = run(["info", bundle, "--json", tmp_path / "old.json"])
    assert res.returncode == 0 and "--json-file" in res.stderr
    assert json.loads((tmp_path / "old.json").read_text())["manifest"]["target"] == "jetson-nano"


@pytest.mark.skipif(_has_tensorrt(), reason="checks the message shown where TensorRT is missing")
@pytest.mark.parametrize("builder,message", [("tensorrt", "error: the TensorRT Python bindings do not import"),
                                             ("trtexec", "error: trtexec not found")])
def test_build_without_tensorrt_is_one_line_and_leaves_nothing(bundle, tmp_path, builder, message, monkeypatch):
    monkeypatch.delenv("TRTEXEC", raising=False)
    before = sorted(p.name for p in bundle.rglob("*"))
    res = run(["build", bundle, "--builder", builder, "--json-file", tmp_path / "b.json"])
    assert res.returncode == 3  # a missing prerequisite, not bad input
    assert res.stderr.startswith(message)
    assert res.stderr.count("\n") == 1 and res.stdout == ""
    assert sorted(p.name for p in bundle.rglob("*")) == before and not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("args,message,status", [
    (["build", "/no/such/bundle"], "error: bundle folder not found: /no/such/bundle", 2),
    (["verify", "{tmp}"], "error: no manifest.json in {tmp}: not a bundle", 2),
    (["bench", "{bundle}", "--min-batch", "4", "--opt-batch", "2"], "error: batch profile must satisfy", 2),
    (["trtexec-cmd", "{bundle}", "--trt-version", "7.1"], "error: TensorRT 7.1 is too old", 2),
    (["bench", "{bundle}", "--trtexec", "--trt-version", "8.2.1"], "error: trtexec not found", 3),
    (["classify", "{bundle}", "{tmp}/none.png", "--backend", "onnxruntime"], "error: cannot read image", 2),
    (["verify", "{bundle}", "--backend", "tensorrt"], "error: the TensorRT Python bindings do not import", 3),
])
def test_bad_input_gives_one_line_error(bundle, tmp_path, args, message, status, monkeypatch):
    monkeypatch.delenv("TRTEXEC", raising=False)
    if _has_tensorrt() and status == 3:
        pytest.skip("checks the message shown where TensorRT is missing")
    args = [a.format(tmp=tmp_path, bundle=bundle) for a in args]
    res = run(args)
    assert res.returncode == status
    assert res.stderr.startswith(message.format(tmp=tmp_path)), res.stderr
    assert res.stderr.count("\n") == 1


def test_tampered_bundle_is_refused(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["onnx"]["input"]["layout"] = "NHWC"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    res = run(["verify", bundle])
    assert res.returncode == 2
    assert res.stderr == "error: manifest.json: field onnx.input.layout: expected one of NCHW, got 'NHWC'\n"


def test_trtexec_cmd_jetson_8_2(bundle, tmp_path):
    out = tmp_path / "cmd.json"
    res = run(["trtexec-cmd", bundle, "--trt-version", "8.2.1.8", "--json", out])
    assert res.returncode == 0, res.stderr
    argv = json.loads(out.read_text())["argv"]
    assert "--explicitBatch" in argv and "--workspace=1024" in argv and "--fp16" in argv
    assert "--maxShapes=input:8x3x4x4" in argv
    # the engine gets the Python builder's cache key (no GPU here: "unknown-gpu" stands in)
    sha = json.loads((bundle / "manifest.json").read_text())["files"]["model.onnx"][:8]
    engine = [a for a in argv if a.startswith("--saveEngine=")][0]
    assert engine.startswith(f"--saveEngine={bundle}/trt-cache/{sha}_unknown-gpu_trt8.2.1_fp16_b1-1-8_")
    assert f"--timingCacheFile={bundle}/trt-cache/timing_unknown-gpu_trt8.2.1.cache" in argv


def test_trtexec_cmd_3090_10_x_bench(bundle):
    res = run(["trtexec-cmd", bundle, "--trt-version", "10.8.0.43", "--target", "rtx3090", "--stage", "bench",
               "--batch", "64", "--runs", "500", "--warmup-ms", "2000", "--export-times", "t.json"])
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert f"--loadEngine={bundle}/trt-cache/" in line and "_unknown-gpu_trt10.8.0_fp16_b1-64-128_" in line
    assert "--shapes=input:64x3x4x4 --warmUp=2000 --iterations=500 --duration=0 --noDataTransfers" in line
    assert "--percentile=90,95,99 --exportTimes=t.json" in line


def test_bundle_copy_of_engines_runs_standalone(tmp_path):
    bundle = make_bundle(tmp_path / "b", target="rtx3090", with_code=True)
    res = run(["info", "."], cwd=bundle)
    assert res.returncode == 0, res.stderr
    assert "bundle: . for rtx3090" in res.stdout


def test_main_in_process_usage(capsys):
    assert main([]) == 2
    assert "choose a command" in capsys.readouterr().err
