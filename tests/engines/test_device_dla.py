"""DLA builds (``--dla-core N``, Jetson Orin NX / AGX Orin) on real bundles through the trtexec path, with a
stand-in trtexec (TensorRT 10.3's banner and log formats, a module with a given number of DLA cores; this
machine has no TensorRT and no DLA) and an Orin's GPU identity: the engine's cache key and sidecar carry the
DLA core and the layers that fell back to the GPU, verify and bench load the engine on that core, and every
request the target or the module cannot meet is refused with one line and its exit status."""

import hashlib
import json
import os

import pytest
from snp_edge.engines import envinfo
from snp_edge.engines.cli import main
from snp_edge.engines.common.errors import EXIT_MISSING_PREREQUISITE, MissingPrerequisite
from snp_edge.engines.profiles import resolve_profile
from snp_edge.engines.sidecar import cache_key, slug
from snp_edge.engines.trt_compat import api_for_version, check_dla_core, parse_dla_fallback, version_key

from tests.engines.device_fixtures import ORIN_IDENTITY, make_bundle

FALLBACK = ("/fc1/MatMul", "/norm/ReduceMean", "/head/MatMul")


@pytest.fixture
def orin(tmp_path, monkeypatch):
    """A jetson-orin bundle, the stand-in trtexec of TensorRT 10.3 on a module with 2 DLA cores, its log."""
    from tests.engines.device_fixtures import fake_trtexec

    log = tmp_path / "trtexec.log"
    monkeypatch.setenv("TRTEXEC", str(fake_trtexec(tmp_path)))
    monkeypatch.setenv("FAKE_TRTEXEC_LOG", str(log))
    monkeypatch.setenv("FAKE_TRTEXEC_VERSION", "v100300")
    monkeypatch.setenv("FAKE_TRTEXEC_DLA_CORES", "2")
    monkeypatch.setenv("FAKE_TRTEXEC_DLA_FALLBACK", ",".join(FALLBACK + FALLBACK[:1]))  # one layer twice
    monkeypatch.setattr(envinfo, "device_identity",
                        lambda trt_version=None: dict(ORIN_IDENTITY, trt_version=trt_version or "10.3.0"))
    monkeypatch.setattr(envinfo, "tensorrt_version", lambda: None)
    return make_bundle(tmp_path / "bundle", target="jetson-orin"), log


def _argvs(log, flag):
    return [a for a in map(json.loads, log.read_text().splitlines()) if any(x.startswith(flag) for x in a)]


def test_dla_build_records_core_and_gpu_fallback(orin, tmp_path):
    bundle, log = orin
    out = tmp_path / "build.json"
    assert main(["build", str(bundle), "--dla-core", "1", "--json-file", str(out)]) == 0
    result = json.loads(out.read_text())
    sc = result["sidecar"]
    assert sc["dla_core"] == 1 and sc["profile"]["min"][0] == sc["profile"]["max"][0] == 1  # one batch size
    assert sc["build_flags"]["dla"] == {"core": 1, "gpu_fallback": True, "gpu_fallback_layers": list(FALLBACK)}
    assert "_fp16_dla1_b1-1-1_" in os.path.basename(result["engine"])
    build = _argvs(log, "--onnx")[0]
    assert "--useDLACore=1" in build and "--allowGPUFallback" in build and "--fp16" in build
    assert "--maxShapes=input:1x3x4x4" in build
    # a GPU engine of the same bundle is another engine; the DLA one is found again with the same flags
    assert main(["build", str(bundle), "--json-file", str(tmp_path / "gpu.json")]) == 0
    gpu = json.loads((tmp_path / "gpu.json").read_text())
    assert gpu["engine"] != result["engine"] and gpu["sidecar"]["dla_core"] is None
    assert gpu["sidecar"]["build_flags"]["dla"] is None
    assert main(["build", str(bundle), "--dla-core", "1"]) == 0 and len(_argvs(log, "--onnx")) == 2  # reused


def test_dla_engine_is_verified_and_timed_on_its_core(orin, tmp_path):
    bundle, log = orin
    assert main(["build", str(bundle), "--dla-core", "0", "--opt-batch", "2"]) == 0
    assert main(["verify", str(bundle), "--dla-core", "0", "--opt-batch", "2", "--json-file",
                 str(tmp_path / "v.json")]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["passed"]
    runs = _argvs(log, "--exportOutput")
    assert runs and all("--useDLACore=0" in r and "--shapes=input:2x3x4x4" in r for r in runs)  # chunks of 2
    out = tmp_path / "bench.json"
    assert main(["bench", str(bundle), "--dla-core", "0", "--opt-batch", "2", "--runs", "5", "--warmup-ms", "0",
                 "--telemetry-ms", "0", "--json-file", str(out)]) == 0
    assert [s["batch"] for s in json.loads(out.read_text())["sections"]] == [2]  # the static batch only
    assert all("--useDLACore=0" in r for r in _argvs(log, "--exportTimes"))


@pytest.mark.parametrize("target,flags,status,message", [
    ("jetson-nano", ["--dla-core", "0"], 2, "error: --dla-core: jetson-nano has no DLA"),
    ("rtx3090", ["--dla-core", "0"], 2, "error: --dla-core: rtx3090 has no DLA"),
    ("jetson-orin-nano", ["--dla-core", "0"], 2, "error: --dla-core: jetson-orin-nano has no DLA"),
    ("jetson-orin", ["--dla-core", "2"], 2, "error: --dla-core 2: jetson-orin modules have at most 2 DLA cores"),
    ("jetson-orin", ["--dla-core", "0", "--precision", "fp32"], 2, "error: --dla-core: DLA runs FP16"),
    ("jetson-orin", ["--dla-core", "0", "--min-batch", "1", "--max-batch", "8"], 2,
     "error: --dla-core needs one batch size (DLA has no dynamic shapes), got min=1 opt=8 max=8"),
])
def test_dla_refusals_are_one_line(orin, tmp_path, capsys, target, flags, status, message):
    bundle = make_bundle(tmp_path / target, target=target)
    capsys.readouterr()
    assert main(["build", str(bundle), *flags]) == status
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not (bundle / "trt-cache").exists()


def test_module_without_dla_is_a_missing_prerequisite(orin, monkeypatch, capsys):
    bundle, _ = orin
    monkeypatch.setenv("FAKE_TRTEXEC_DLA_CORES", "0")  # an Orin Nano's module, built for the jetson-orin target
    assert main(["build", str(bundle), "--dla-core", "0"]) == EXIT_MISSING_PREREQUISITE
    err = capsys.readouterr().err
    assert err.startswith("error: --dla-core 0: trtexec finds no such DLA core on this module") and err.count("\n") == 1
    assert sorted(os.listdir(bundle / "trt-cache")) == []  # nothing staged is left


def test_python_builder_dla_checks():
    """What the Python builder does with builder.num_DLA_cores (exit 3: the module lacks it)."""
    with pytest.raises(MissingPrerequisite, match=r"^--dla-core 0: NVIDIA Jetson Orin Nano Developer Kit has no DLA"):
        check_dla_core(0, 0, "NVIDIA Jetson Orin Nano Developer Kit")
    with pytest.raises(MissingPrerequisite, match=r"^--dla-core 1: this module has 1 DLA core \(0\)"):
        check_dla_core(1, 1)
    assert check_dla_core(2, 1) == 1


def test_trtexec_fallback_logs_of_both_formats():
    old = ("[W] [TRT] Default DLA is enabled but layer /blocks.0/attn/MatMul is not supported on DLA, falling back to "
           "GPU.\n[W] [TRT] Default DLA is enabled but layer (Unnamed Layer* 12) [Shuffle] is not supported on DLA, "
           "falling back to GPU.\n")
    new = ("[W] [TRT] Layer '/blocks.0/attn/MatMul' (MATRIX_MULTIPLY): Unsupported on DLA. Switching this layer's "
           "device type to GPU.\n[W] [TRT] Layer '(Unnamed Layer* 12) [Shuffle]' (SHUFFLE): Unsupported on DLA. "
           "Switching this layer's device type to GPU.\n")
    want = ["/blocks.0/attn/MatMul", "(Unnamed Layer* 12) [Shuffle]"]
    assert parse_dla_fallback(api_for_version("8.2.1"), old) == want
    assert parse_dla_fallback(api_for_version("10.3.0"), new) == want
    assert parse_dla_fallback(api_for_version("8.5.2"), old) == []  # each version's own format only


def test_gpu_engine_keys_are_unchanged_by_dla():
    """Engines built before DLA existed here keep their cache keys (and are reused after an update)."""
    manifest = {"target": "jetson-orin", "onnx": {"input": {"name": "input", "shape": [-1, 3, 4, 4]}}}
    profile = resolve_profile(manifest)
    sha = "ab" * 32
    blob = json.dumps([sha, version_key("10.3.0"), "Orin", "fp16", "input", [[1, 3, 4, 4], [1, 3, 4, 4],
                                                                           [16, 3, 4, 4]]], sort_keys=True)
    before = "{}_{}_trt10.3.0_fp16_b1-1-16_{}".format(sha[:8], slug("Orin"), hashlib.sha256(blob.encode()).hexdigest()[:12])
    assert cache_key(sha, "10.3.0.26", "Orin", "fp16", profile) == before
    dla = [cache_key(sha, "10.3.0", "Orin", "fp16", profile, core) for core in (0, 1)]
    assert len({before, *dla}) == 3 and all("_fp16_dla" in k for k in dla)


def test_static_batch_engine_takes_any_number_of_images(orin, tmp_path):
    """A DLA engine of batch 3 verifies the 8 golden images as 3 + 3 + 2 (the last chunk padded to 3 by
    repeating its last image; the gates see the 8 outputs of the images given)."""
    import numpy as np
    from snp_edge.engines.runtime import padded

    x = np.arange(2 * 3, dtype=np.float32).reshape(2, 3)
    assert padded(x, 3).tolist() == [[0, 1, 2], [3, 4, 5], [3, 4, 5]] and padded(x, 2) is x
    bundle, log = orin
    assert main(["build", str(bundle), "--dla-core", "0", "--opt-batch", "3"]) == 0
    assert main(["verify", str(bundle), "--dla-core", "0", "--opt-batch", "3", "--skip-preprocessing"]) == 0
    shapes = [[a for a in argv if a.startswith("--shapes=")] for argv in _argvs(log, "--exportOutput")]
    assert shapes == [["--shapes=input:3x3x4x4"]] * 3
