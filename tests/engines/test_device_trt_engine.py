"""Real engines from the tiny bundle: build (FP16 with FP32 LayerNorm, and FP32), cache reuse, verify
against ONNX Runtime, timing, and refusal of a mismatched sidecar. Needs TensorRT, pycuda or cuda-python,
and a GPU; skipped with the reason elsewhere."""

import json

import numpy as np
import pytest
from snp_edge.engines.common.errors import EnginesError

from tests.engines.device_fixtures import make_bundle

pytestmark = pytest.mark.trt


@pytest.fixture(scope="module")
def identity():
    pytest.importorskip("tensorrt", reason="TensorRT Python bindings not installed")
    from snp_edge.engines.envinfo import device_identity

    try:
        return device_identity()
    except EnginesError as exc:
        pytest.skip(f"no usable GPU/CUDA bindings: {exc}")


@pytest.fixture(scope="module")
def built(identity, tmp_path_factory):
    from snp_edge.engines.build import build_bundle
    from snp_edge.engines.manifest import load_manifest
    from snp_edge.engines.profiles import resolve_profile

    root = make_bundle(tmp_path_factory.mktemp("trt") / "bundle")
    manifest = load_manifest(str(root))
    profile = resolve_profile(manifest)
    result = build_bundle(str(root), manifest, profile, "fp16", fp32_norms=True)
    return root, manifest, profile, result


def test_build_writes_engine_sidecar_and_timing_cache(built, identity):
    root, _, _, result = built
    sc = result.sidecar
    assert not result.reused
    assert sc["trt_version"] == identity["trt_version"] and sc["gpu_name"] == identity["gpu_name"]
    assert sc["precision"] == "fp16-fp32norms" and sc["profile"]["max"] == [8, 3, 4, 4]
    assert len(sc["build_flags"]["pinned_fp32_layers"]) == 9  # the 9 /norm/ nodes
    assert sc["build_time_s"] > 0
    cache_files = sorted(p.name for p in (root / "trt-cache").iterdir())
    assert any(n.startswith("timing_") for n in cache_files)
    assert not any(n.endswith(".tmp") for n in cache_files)


def test_second_build_reuses_the_engine(built):
    from snp_edge.engines.build import build_bundle

    root, manifest, profile, first = built
    again = build_bundle(str(root), manifest, profile, "fp16", fp32_norms=True)
    assert again.reused and again.engine_path == first.engine_path


def test_verify_against_onnxruntime(built):
    from snp_edge.engines.runtime import EngineRunner
    from snp_edge.engines.verify import tolerance_for, verify_engine

    root, manifest, _, result = built
    runner = EngineRunner(result.engine_path)
    try:
        report = verify_engine(runner, np.load(root / "golden" / "inputs.npy"),
                               np.load(root / "golden" / "outputs.npy"), "logits", 3,  # 3 chunks: 3+3+2
                               tolerance_for(result.sidecar["precision"]))
    finally:
        runner.close()
    assert report["passed"], report["failures"]


def test_cli_fp32_build_verify_bench(built, tmp_path):
    from snp_edge.engines.cli import main

    root = built[0]
    assert main(["build", str(root), "--precision", "fp32"]) == 0
    assert main(["verify", str(root), "--precision", "fp32", "--json", str(tmp_path / "v.json")]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["report"]["max_abs_err"] < 1e-3
    out = tmp_path / "bench.json"
    assert main(["bench", str(root), "--precision", "fp32", "--batch", "2", "--batch", "8", "--warmup", "5",
                 "--runs", "20", "--json-file", str(out)]) == 0
    bench = json.loads(out.read_text())
    assert [s["batch"] for s in bench["sections"]] == [2, 8] and bench["env"]["tensorrt"]
    for s in bench["sections"]:
        assert s["gpu_ms"]["n"] == 20 and s["e2e_ms"]["n"] == 20 and len(s["gpu_latencies_ms"]) == 20
        assert s["e2e_ms"]["median"] >= s["gpu_ms"]["median"] > 0  # copies and synchronisation on top
    graph = tmp_path / "graph.json"
    assert main(["bench", str(root), "--precision", "fp32", "--batch", "8", "--warmup", "5", "--runs", "20",
                 "--cuda-graph", "--json-file", str(graph)]) == 0
    assert json.loads(graph.read_text())["sections"][0]["gpu_ms"]["n"] == 20


def test_classifier_with_tensorrt_matches_onnxruntime(built):
    from snp_edge.engines import Classifier

    root = built[0]
    frames = [np.random.RandomState(i).randint(0, 256, (48, 64, 3)).astype(np.uint8) for i in range(3)]
    with Classifier(str(root), backend="tensorrt", precision="fp32") as trt, \
            Classifier(str(root), backend="onnxruntime") as ort:
        a, b = trt.classify(frames, top_k=3), ort.classify(frames, top_k=3)
    for row_a, row_b in zip(a, b, strict=False):
        assert [c for c, _, _ in row_a] == [c for c, _, _ in row_b]
        assert np.allclose([p for _, p, _ in row_a], [p for _, p, _ in row_b], atol=1e-4)


def test_time_engine(built):
    from snp_edge.engines.runtime import time_engine

    times = time_engine(built[3].engine_path, 8, 3, 10)
    assert len(times) == 10 and all(isinstance(t, float) and t > 0 for t in times)


def test_mismatched_sidecar_is_refused(built, tmp_path):
    import shutil

    from snp_edge.engines.common.errors import IncompatibleEngine
    from snp_edge.engines.runtime import EngineRunner

    engine = tmp_path / "copy.engine"
    shutil.copy(built[3].engine_path, str(engine))
    sidecar = dict(built[3].sidecar, trt_version="8.2.1.8", gpu_name="NVIDIA Tegra X1")
    (tmp_path / "copy.engine.json").write_text(json.dumps(sidecar))
    with pytest.raises(IncompatibleEngine, match="was built with TensorRT 8.2.1.8 on NVIDIA Tegra X1"):
        EngineRunner(str(engine))


def test_dla_build_where_tensorrt_runs(identity, tmp_path):
    """``--dla-core 0`` with TensorRT's Python builder: on a module with DLA (Orin NX / AGX Orin) an engine with
    the GPU-fallback layers in its sidecar that verifies; anywhere else (an x86 GPU, an Orin Nano) exit 3."""
    import tensorrt as trt
    from snp_edge.engines.cli import main

    bundle = make_bundle(tmp_path / "bundle", target="jetson-orin")
    out = tmp_path / "build.json"
    status = main(["build", str(bundle), "--dla-core", "0", "--builder", "tensorrt", "--json-file", str(out)])
    if trt.Builder(trt.Logger(trt.Logger.ERROR)).num_DLA_cores == 0:
        assert status == 3 and not out.exists()
        return
    assert status == 0
    sc = json.loads(out.read_text())["sidecar"]
    assert sc["dla_core"] == 0 and sc["profile"]["min"] == sc["profile"]["max"]
    assert isinstance(sc["build_flags"]["dla"]["gpu_fallback_layers"], list)
    assert main(["verify", str(bundle), "--dla-core", "0", "--backend", "tensorrt"]) == 0
