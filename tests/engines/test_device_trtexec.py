"""trtexec command lines per version, and parsers on output written in the formats trtexec 8.2 and 10.x
print (samples/common/sampleReporting.cpp at those releases)."""

import json

import pytest
from snp_edge.engines.common.errors import EnginesError
from snp_edge.engines.profiles import resolve_profile
from snp_edge.engines.trt_compat import api_for_version
from snp_edge.engines.trtexec import (
    build_command,
    compute_times_ms,
    parse_summary,
    shape_spec,
    timing_command,
)

from tests.engines.device_fixtures import manifest_dict

JETSON_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"

TRTEXEC_8_2_LOG = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # /usr/src/tensorrt/bin/trtexec --loadEngine=m.engine
[02/01/2025-10:11:12] [I] === Device Information ===
[02/01/2025-10:11:12] [I] Selected Device: NVIDIA Tegra X1
[02/01/2025-10:11:12] [I] Compute Capability: 5.3
[02/01/2025-10:11:20] [I] Warmup completed 52 queries over 1000 ms
[02/01/2025-10:11:20] [I] Timing trace has 1000 queries over 19.4326 s
[02/01/2025-10:11:20] [I]
[02/01/2025-10:11:20] [I] === Performance summary ===
[02/01/2025-10:11:20] [I] Throughput: 51.4598 qps
[02/01/2025-10:11:20] [I] Latency: min = 19.1023 ms, max = 21.8871 ms, mean = 19.4101 ms, median = 19.3418 ms, percentile(99%) = 20.7441 ms
[02/01/2025-10:11:20] [I] End-to-End Host Latency: min = 19.1143 ms, max = 21.9094 ms, mean = 19.4271 ms, median = 19.3574 ms, percentile(99%) = 20.7625 ms
[02/01/2025-10:11:20] [I] Enqueue Time: min = 1.48438 ms, max = 3.30859 ms, mean = 1.62612 ms, median = 1.59375 ms, percentile(99%) = 2.39062 ms
[02/01/2025-10:11:20] [I] H2D Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(99%) = 0 ms
[02/01/2025-10:11:20] [I] GPU Compute Time: min = 19.1023 ms, max = 21.8871 ms, mean = 19.4101 ms, median = 19.3418 ms, percentile(99%) = 20.7441 ms
[02/01/2025-10:11:20] [I] D2H Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(99%) = 0 ms
[02/01/2025-10:11:20] [I] Total Host Walltime: 19.4326 s
[02/01/2025-10:11:20] [I] Total GPU Compute Time: 19.4101 s
[02/01/2025-10:11:20] [I] Explanations of the performance metrics are printed in the verbose logs.
&&&& PASSED TensorRT.trtexec [TensorRT v8201] # /usr/src/tensorrt/bin/trtexec --loadEngine=m.engine
"""

TRTEXEC_10_LOG = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v100800] [b43] # trtexec --loadEngine=m.engine
[02/01/2025-10:11:12] [I] === Performance summary ===
[02/01/2025-10:11:12] [I] Throughput: 2104.66 qps
[02/01/2025-10:11:12] [I] Latency: min = 0.461792 ms, max = 0.541748 ms, mean = 0.472451 ms, median = 0.470947 ms, percentile(90%) = 0.477051 ms, percentile(95%) = 0.480225 ms, percentile(99%) = 0.493652 ms
[02/01/2025-10:11:12] [I] Enqueue Time: min = 0.0090332 ms, max = 0.0366211 ms, mean = 0.0101074 ms, median = 0.00976562 ms, percentile(90%) = 0.0107422 ms, percentile(95%) = 0.0112305 ms, percentile(99%) = 0.0141602 ms
[02/01/2025-10:11:12] [I] H2D Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(90%) = 0 ms, percentile(95%) = 0 ms, percentile(99%) = 0 ms
[02/01/2025-10:11:12] [I] GPU Compute Time: min = 0.461792 ms, max = 0.541748 ms, mean = 0.472451 ms, median = 0.470947 ms, percentile(90%) = 0.477051 ms, percentile(95%) = 0.480225 ms, percentile(99%) = 0.493652 ms
[02/01/2025-10:11:12] [I] D2H Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(90%) = 0 ms, percentile(95%) = 0 ms, percentile(99%) = 0 ms
[02/01/2025-10:11:12] [I] Total Host Walltime: 0.475136 s
[02/01/2025-10:11:12] [I] Total GPU Compute Time: 0.472451 s
&&&& PASSED TensorRT.trtexec [TensorRT v100800] [b43] # trtexec --loadEngine=m.engine
"""


def _record(start, compute, e2e=None):
    rec = {"startEnqMs": start, "endEnqMs": start + 0.01, "startH2dMs": start, "endH2dMs": start,
           "startComputeMs": start, "endComputeMs": start + compute, "startD2hMs": start + compute,
           "endD2hMs": start + compute, "h2dMs": 0, "computeMs": compute, "d2hMs": 0, "latencyMs": compute}
    if e2e is not None:
        rec["endToEndMs"] = e2e
    return rec


def _profile(target):
    m = manifest_dict(target)
    m["onnx"]["input"]["shape"] = [-1, 3, 224, 224]
    return resolve_profile(m)


def test_shape_spec():
    assert shape_spec("input", (8, 3, 224, 224)) == "input:8x3x224x224"


def test_build_command_8_2():
    cmd = build_command(api_for_version("8.2.1.8"), JETSON_TRTEXEC, "model.onnx", "trt-cache/m.engine",
                        _profile("jetson-nano"), "fp16", timing_cache="trt-cache/t.cache")
    assert cmd == [JETSON_TRTEXEC, "--onnx=model.onnx", "--saveEngine=trt-cache/m.engine", "--explicitBatch",
                   "--minShapes=input:1x3x224x224", "--optShapes=input:1x3x224x224",
                   "--maxShapes=input:8x3x224x224", "--workspace=1024", "--fp16",
                   "--timingCacheFile=trt-cache/t.cache"]


def test_build_command_10_x():
    cmd = build_command(api_for_version("10.8.0.43"), "trtexec", "model.onnx", "m.engine", _profile("rtx3090"),
                        "fp16")
    assert "--memPoolSize=workspace:4096M" in cmd and "--fp16" in cmd
    assert "--optShapes=input:64x3x224x224" in cmd and "--maxShapes=input:128x3x224x224" in cmd
    assert not any(c.startswith(("--workspace=", "--explicitBatch")) for c in cmd)


def test_build_command_fp32_and_11():
    fp32 = build_command(api_for_version("10.8"), "trtexec", "m.onnx", "m.engine", _profile("rtx3090"), "fp32")
    assert "--noTF32" in fp32 and "--fp16" not in fp32
    strong = build_command(api_for_version("11.0"), "trtexec", "m.onnx", "m.engine", _profile("rtx3090"), "fp16",
                           onnx_dtype="float16")
    assert "--stronglyTyped" in strong and "--fp16" not in strong
    with pytest.raises(EnginesError, match="TensorRT 11.0 has no FP16 builder flag"):
        build_command(api_for_version("11.0"), "trtexec", "m.onnx", "m.engine", _profile("rtx3090"), "fp16")
    with pytest.raises(EnginesError, match="need the Python builder"):
        build_command(api_for_version("8.2.1"), "trtexec", "m.onnx", "m.engine", _profile("rtx3090"), "fp16",
                      fp32_norms=True)


def test_timing_commands():
    cmd82 = timing_command(api_for_version("8.2.1"), JETSON_TRTEXEC, "m.engine", "input", (1, 3, 224, 224),
                           warmup_ms=2000, iterations=1000, export_times="times.json")
    assert cmd82 == [JETSON_TRTEXEC, "--loadEngine=m.engine", "--shapes=input:1x3x224x224", "--warmUp=2000",
                     "--iterations=1000", "--duration=0", "--noDataTransfers", "--useSpinWait",
                     "--percentile=99", "--exportTimes=times.json"]
    cmd10 = timing_command(api_for_version("10.8"), "trtexec", "m.engine", "input", (64, 3, 224, 224))
    assert "--percentile=90,95,99" in cmd10 and not any(c.startswith("--exportTimes") for c in cmd10)


def test_parse_summary_8_2():
    s = parse_summary(TRTEXEC_8_2_LOG)
    assert s["throughput_qps"] == pytest.approx(51.4598)
    assert s["gpu_compute_ms"] == {"min": 19.1023, "max": 21.8871, "mean": 19.4101, "median": 19.3418,
                                   "p99": 20.7441}
    assert s["end_to_end_ms"]["p99"] == pytest.approx(20.7625)
    assert s["latency_ms"]["mean"] == pytest.approx(19.4101) and s["h2d_ms"]["max"] == 0
    assert s["total_host_walltime_s"] == pytest.approx(19.4326) and s["trt_version"] == "v8201"


def test_parse_summary_10_x():
    s = parse_summary(TRTEXEC_10_LOG)
    assert s["gpu_compute_ms"]["p90"] == pytest.approx(0.477051)
    assert s["gpu_compute_ms"]["p95"] == pytest.approx(0.480225)
    assert s["gpu_compute_ms"]["median"] == pytest.approx(0.470947)
    assert s["enqueue_ms"]["median"] == pytest.approx(0.00976562)
    assert "end_to_end_ms" not in s and s["throughput_qps"] == pytest.approx(2104.66)
    assert s["trt_version"] == "v100800"


def test_parse_summary_without_results():
    with pytest.raises(EnginesError, match="no 'GPU Compute Time' line"):
        parse_summary("&&&& FAILED TensorRT.trtexec [TensorRT v8201]\n[E] Error[3]: engine deserialization\n")


def test_export_times_8_2_drops_warmups():
    # 8.2 exports every iteration; warm-ups are those starting compute before --warmUp ms (trtexec's rule)
    records = [_record(t, 19.0 + 0.1 * i, e2e=19.5) for i, t in enumerate([0.0, 19.3, 980.0, 1000.2, 1019.6])]
    text = json.dumps(records, indent=2)
    assert compute_times_ms(text, warmup_ms=1000) == pytest.approx([19.3, 19.4])


def test_export_times_10_x_has_no_warmups():
    records = [_record(1000.0 + 0.5 * i, 0.47) for i in range(4)]
    assert compute_times_ms(records) == [0.47] * 4


def test_export_times_errors():
    with pytest.raises(EnginesError, match="not a trtexec --exportTimes file"):
        compute_times_ms('{"computeMs": 1}')
    with pytest.raises(EnginesError, match="no timed runs"):
        compute_times_ms([_record(0.0, 1.0)], warmup_ms=1000)
