"""INT8 post-training quantisation (export/quantize.py, export/int8_bundle.py, snp-edge quantize): the Q/DQ
placement each runtime wants, the accuracy gate and its refusals, INT8 bundles."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from snp_edge.errors import SnpEdgeError, VerificationFailed


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory, tiny_handle):
    """DeiT-Tiny at 64 px (random weights), exported at opset 17, and 12 calibration images for it."""
    from snp_edge.export.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("q") / "fp32.onnx"
    export_onnx(tiny_handle, path, opset=17)
    calib = np.random.default_rng(0).standard_normal((12, 3, 64, 64)).astype(np.float32)
    return path, calib


def test_registries_match_the_command_line():
    from snp_edge.export.quantize import CALIBRATION_METHODS
    from snp_edge.export.quantize import QUANTIZERS as REGISTRY

    from snp_edge.cli.args import CALIBRATIONS, QUANTIZERS

    assert QUANTIZERS == tuple(REGISTRY) and CALIBRATIONS == CALIBRATION_METHODS


@pytest.mark.slow
def test_ort_quantizer_places_per_channel_qdq_and_records_the_gate(fp32_onnx, tmp_path):
    import onnx.numpy_helper
    from snp_edge.export import quantize as quantize_mod
    from snp_edge.export.quantize import GateThresholds, quantize_onnx, read_quantization
    from snp_edge.export.trt_ops import check_qdq

    src, calib = fp32_onnx
    result = quantize_onnx(src, tmp_path / "q.onnx", calib, "ort", "minmax", thresholds=GateThresholds(0.0, 1e6))
    model = onnx.load(str(tmp_path / "q.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert result.qdq_nodes == ops.count("QuantizeLinear") > 0 and "QLinearMatMul" not in ops  # QDQ format
    inits = {i.name for i in model.graph.initializer}
    weights = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    with_int8_weights = {n.op_type for n in model.graph.node if weights & set(n.input)}
    assert with_int8_weights == {"MatMul", "Gemm", "Conv"} or with_int8_weights == {"Gemm", "Conv"}
    # only the weight GEMMs: the attention's activation x activation MatMuls (and the Softmax between them) stay
    # FP32, with no Q/DQ on their inputs
    fp32_model = onnx.load(str(src))
    act_matmuls = [n.name for n in fp32_model.graph.node if n.op_type == "MatMul" and n.name not in
                   quantize_mod.weight_gemms(fp32_model)]
    assert len(act_matmuls) == 2 * 12  # QK^T and attn x V in each of DeiT-Tiny's 12 blocks
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    by_name = {n.name: n for n in model.graph.node}
    assert all(not dq_out & set(by_name[name].input) for name in act_matmuls)
    assert not any(dq_out & set(n.input) for n in model.graph.node if n.op_type == "Softmax")
    # the GEMMs' outputs stay float: no QuantizeLinear right after a weight GEMM
    gemm_out = {n.output[0] for n in model.graph.node if n.op_type in ("Gemm", "Conv", "MatMul")}
    assert not any(n.input[0] in gemm_out for n in model.graph.node if n.op_type == "QuantizeLinear")
    # 7-bit weights (reduce_range): x86 AVX2's u8 x s8 pair sums (2 x 255 x 64) cannot saturate 16 bits
    int8_weights = [onnx.numpy_helper.to_array(i) for i in model.graph.initializer
                    if i.data_type == onnx.TensorProto.INT8]
    assert int8_weights and max(int(np.abs(w.astype(np.int32)).max()) for w in int8_weights) == 64
    axes = [a.i for n in model.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute if a.name == "axis"]
    assert axes, "per-channel weights carry an axis"
    record = read_quantization(tmp_path / "q.onnx")
    assert record["quantizer"] == "ort" and record["method"] == "minmax" and record["calib_images"] == 12
    assert record["gate"]["passed"] and record["gate"]["n"] == 12 and record["gate"]["thresholds"]["min_top1"] == 0.0
    assert 0 <= record["gate"]["top1_agreement"] <= 1 and record["gate"]["max_abs_err"] > 0
    # ONNX Runtime's placement (asymmetric uint8 activations) is not what TensorRT takes
    with pytest.raises(SnpEdgeError, match="trt10"):
        check_qdq(model, "trt10")


@pytest.mark.slow
def test_the_gate_refuses_below_its_thresholds(fp32_onnx, tmp_path):
    from snp_edge.export.quantize import GateThresholds, quantize_onnx

    src, calib = fp32_onnx
    with pytest.raises(VerificationFailed, match=r"fails the accuracy gate .* max abs error .* > .*nothing written"):
        quantize_onnx(src, tmp_path / "q.onnx", calib, "ort", "minmax", thresholds=GateThresholds(0.0, 1e-9))


def test_quantizer_and_method_must_fit(fp32_onnx, tmp_path):
    from snp_edge.export.quantize import quantize_onnx

    src, calib = fp32_onnx
    with pytest.raises(SnpEdgeError, match="--calibration percentile is not available with --quantizer modelopt"):
        quantize_onnx(src, tmp_path / "q.onnx", calib, "modelopt", "percentile")
    with pytest.raises(SnpEdgeError, match="unknown quantizer 'tflite'; use one of ort, modelopt"):
        quantize_onnx(src, tmp_path / "q.onnx", calib, "tflite")
    with pytest.raises(SnpEdgeError, match=r"\(N, C, H, W\) images with N >= 1"):
        quantize_onnx(src, tmp_path / "q.onnx", calib[0], "ort")


@pytest.mark.slow
def test_modelopt_places_qdq_tensorrt_accepts(fp32_onnx, tmp_path):
    pytest.importorskip("modelopt.onnx.quantization", reason="pip install '.[int8]' (NVIDIA Model Optimizer)")
    from snp_edge.export.quantize import quantize_for_target
    from snp_edge.export.trt_ops import check_qdq

    src, calib = fp32_onnx
    result = quantize_for_target(src, tmp_path / "q.onnx", calib, "jetson-orin", gate=False)
    model = onnx.load(str(tmp_path / "q.onnx"))
    assert result.quantizer == "modelopt" and check_qdq(model, "trt10") == result.qdq_nodes > 0
    # LayerNorm, Softmax and GELU (Erf) stay unquantised
    produced_by = {o: n.op_type for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax", "Erf"):
            assert all(produced_by.get(i) != "DequantizeLinear" for i in node.input), node.name


def test_targets_without_int8_and_tensorrt_placements(fp32_onnx, tmp_path):
    from snp_edge.engines.common.errors import EnginesError
    from snp_edge.export.quantize import quantize_for_target

    src, calib = fp32_onnx
    with pytest.raises(EnginesError, match="--precision int8: jetson-nano runs fp32, fp16 only"):
        quantize_for_target(src, tmp_path / "q.onnx", calib, "jetson-nano")
    with pytest.raises(SnpEdgeError, match="--quantizer ort places Q/DQ for ONNX Runtime .* use --quantizer modelopt"):
        quantize_for_target(src, tmp_path / "q.onnx", calib, "rtx3090", quantizer="ort")
    assert not (tmp_path / "q.onnx").exists()


def test_quantize_command_refusals_write_nothing(fp32_onnx, tmp_path, capsys):
    from snp_edge.cli import main

    src, calib = fp32_onnx
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(src), "--target", "jetson-nano", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("snp-edge quantize: error: --precision int8: jetson-nano runs fp32, fp16 only (no fast INT8 on "
                   "its GPU)") and not out.exists()
    assert main(["export", str(src), "--target", "jetson-nano", "--precision", "int8", "--out", str(out)]) == 2
    assert "jetson-nano runs fp32, fp16 only" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_quantize_command_gate_failure_exits_1_and_writes_nothing(fp32_onnx, tmp_path, capsys):
    from snp_edge.cli import main

    src, calib = fp32_onnx
    np.save(tmp_path / "calib.npy", calib)
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(src), "--target", "raspberry-pi-5", "--calib", str(tmp_path / "calib.npy"),
            "--out", str(out)]
    assert main([*argv, "--int8-max-error", "1e-9"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("snp-edge quantize: error: INT8 (ort, minmax) fails the accuracy gate against FP32 on "
                              "12 calibration images: max abs error")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["calib.npy"]
    assert main([*argv, "--int8-min-top1", "0", "--int8-max-error", "1000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["quantizer"] == "ort" and doc["gate"]["passed"] and doc["target"] == "raspberry-pi-5" and out.is_file()


@pytest.mark.slow
def test_int8_bundle_for_a_cpu_target(tiny_handle, tmp_path):
    """model.onnx is the Q/DQ model, golden outputs and top-k its own, FP32 logits beside; the manifest says so."""
    from snp_edge.engines.common.ort import ort_session, run_logits
    from snp_edge.engines.manifest import load_manifest
    from snp_edge.export.bundle import make_bundle
    from snp_edge.export.int8_bundle import Int8Options

    path = make_bundle(tiny_handle, "raspberry-pi-5", tmp_path / "b", precision="int8", int8=Int8Options(gate=False))
    m = load_manifest(str(path))
    q = m["quantization"]
    assert (q["precision"], q["quantizer"], q["method"]) == ("int8", "ort", "minmax") and q["qdq_nodes"] > 0
    assert q["fp32_outputs"] in m["files"] and m["golden"]["top_k"]["source"].startswith("onnxruntime int8")
    inputs, golden = np.load(path / "golden/inputs.npy"), np.load(path / "golden/outputs.npy")
    fp32 = np.load(path / q["fp32_outputs"])
    assert np.array_equal(golden, run_logits(ort_session(str(path / "model.onnx"), optimization="basic"), inputs))
    assert not np.array_equal(golden, fp32) and np.abs(golden - fp32).max() < np.abs(fp32).max()
    assert sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(path / "model.onnx")).graph.node) == q["qdq_nodes"]


@pytest.mark.slow
def test_jetson_orin_int8_bundle_runs_under_jetpack6_python(tiny_handle, tmp_path):
    """A jetson-orin --precision int8 bundle: Model Optimizer's Q/DQ model passes TensorRT 10's explicit-
    quantisation rules, and the device code under CPython 3.10 (JetPack 6's onnxruntime 1.18.0) verifies it
    with ONNX Runtime (Q/DQ as written) and reports the distance from the FP32 logits."""
    pytest.importorskip("modelopt.onnx.quantization", reason="pip install '.[int8]' (NVIDIA Model Optimizer)")
    from snp_edge.export.bundle import make_bundle
    from snp_edge.export.int8_bundle import Int8Options
    from snp_edge.export.trt_ops import check_qdq

    from tests.engines.device_python import device_venv, launch

    path = make_bundle(tiny_handle, "jetson-orin", tmp_path / "b", precision="int8", int8=Int8Options(gate=False))
    m = json.loads((path / "manifest.json").read_text())
    assert m["quantization"]["quantizer"] == "modelopt"
    assert check_qdq(onnx.load(str(path / "model.onnx")), "trt10") == m["quantization"]["qdq_nodes"] > 0
    res = launch(device_venv("3.10"), path, "verify", path, "--backend", "onnxruntime", "--json-file",
                 tmp_path / "v.json")
    assert res.returncode == 0, res.stderr + res.stdout
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["passed"] and report["backend"]["precision"] == "int8" and report["env"]["python"].startswith("3.10.")
    # the Q/DQ graph as written, by another ONNX Runtime: within the int8 tolerance (0.026 x scale seen here)
    assert report["report"]["max_abs_err"] <= report["report"]["atol"] == 0.05 * report["report"]["logit_scale"]
    assert report["fp32_distance"]["max_abs_err"] > 0 and "distance from FP32" in res.stdout + res.stderr


@pytest.mark.slow
def test_raspberry_pi_int8_bundle_verifies_classifies_and_benches_under_bookworm_python(tiny_handle, tmp_path):
    """A raspberry-pi-5 --precision int8 bundle under Raspberry Pi OS Bookworm's CPython 3.11 (onnxruntime
    1.18.1) on this x86 host: the device runs ONNX Runtime's int8 kernels (all graph optimisations) and they
    must reproduce the goldens (the host's Q/DQ graph as written) within the int8 tolerance. With 8-bit
    weights x86 AVX2's u8 x s8 kernels saturated and missed by 0.15-0.27 x scale; 7-bit weights cannot
    saturate, and ARM64's dot-product kernels never do, so the same goldens hold on both."""
    from snp_edge.export.bundle import make_bundle
    from snp_edge.export.int8_bundle import Int8Options

    from tests.engines.device_python import device_venv, launch

    python = device_venv("3.11")
    path = make_bundle(tiny_handle, "raspberry-pi-5", tmp_path / "b", precision="int8", int8=Int8Options(gate=False))
    res = launch(python, path, "verify", path, "--backend", "onnxruntime", "--json-file", tmp_path / "v.json")
    assert res.returncode == 0, res.stderr + res.stdout
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["passed"] and report["backend"]["precision"] == "int8" and report["env"]["python"].startswith("3.11.")
    r = report["report"]
    assert r["atol"] == 0.05 * r["logit_scale"] and r["max_abs_err"] <= 0.6 * r["atol"]  # 0.02-0.03 x scale seen
    assert report["fp32_distance"]["max_abs_err"] > 0
    photo = path / "reference" / "images" / "astronaut.png"
    res = launch(python, path, "classify", path, photo, "--backend", "onnxruntime", "--json")
    assert res.returncode == 0, res.stderr
    top = json.loads(res.stdout.strip().splitlines()[-1])["results"][0]["top_k"]
    assert len(top) == 5 and all(0 <= t["prob"] <= 1 for t in top)
    res = launch(python, path, "bench", path, "--backend", "onnxruntime", "--threads", "1", "--batch", "1",
                 "--warmup", "1", "--runs", "3", "--json-file", tmp_path / "bench.json")
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["target"] == "raspberry-pi-5" and doc["sections"][0]["e2e_ms"]["n"] == 3
