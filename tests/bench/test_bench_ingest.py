"""Device measurement files in the same report: ``engines bench --json`` output, trtexec --exportTimes
JSON and a trtexec console log (the formats engines/ writes and parses)."""

import json

import numpy as np
import pytest
from snp_edge.bench.schema import validate

# trtexec --exportTimes records (TensorRT 8.5+ layout, three of its fields)
EXPORT_TIMES = [{"startComputeMs": 0.1 * i, "computeMs": c, "latencyMs": c + 0.05}
                for i, c in enumerate([2.0, 2.1, 1.9, 2.2, 2.0, 2.05])]
TRTEXEC_LOG = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v100800] # trtexec --loadEngine=m.engine
[02/01/2025-10:11:12] [I] === Performance summary ===
[02/01/2025-10:11:12] [I] Throughput: 1000.0 qps
[02/01/2025-10:11:12] [I] GPU Compute Time: min = 0.9 ms, max = 1.3 ms, mean = 1.0 ms, median = 0.98 ms, \
percentile(90%) = 1.1 ms, percentile(95%) = 1.15 ms, percentile(99%) = 1.2 ms
"""


def device_bench_json(latencies, pruned, gmacs):
    """What ``python3 -m engines bench BUNDLE --json`` writes (schema snp-edge-device-bench/1)."""
    return {"schema": "snp-edge-device-bench/1", "created": "2025-02-01T10:11:12Z", "engine": "/b/m.engine",
            "target": "jetson-nano", "precision": "fp16",
            "model": {"base_model": "deit_small_patch16_224", "pruned": pruned, "gmacs": gmacs, "params": 1000,
                      "accuracy_meaningful": False, "notice": "random weights"},
            "batch": 1, "timer": "cuda events per run", "warmup": {"warmup_runs": 200},
            "stats": {}, "latencies_ms": latencies, "trtexec_summary": None,
            "env": {"jetson": {"power_mode": {"mode": "MAXN", "id": 0}}}}


def test_engines_bench_json(cli, tmp_path):
    (tmp_path / "deit_s.json").write_text(json.dumps(device_bench_json([10.0, 10.2, 9.8, 10.1], False, 4.6)))
    (tmp_path / "deit_s_snp.json").write_text(json.dumps(device_bench_json([3.3, 3.2, 3.4, 3.1], True, 1.3)))
    out = tmp_path / "out"
    rc, stdout, err = cli("bench", tmp_path / "deit_s.json", tmp_path / "deit_s_snp.json", "--out", out)
    assert rc == 0, err
    doc = json.loads((out / "results.json").read_text())
    validate(doc)
    base, snp = doc["candidates"]
    assert (base["label"], snp["label"], base["role"], snp["role"]) == ("deit_s", "deit_s_snp", "unpruned", "pruned")
    assert snp["speedup_mean"] == pytest.approx(np.mean([10.0, 10.2, 9.8, 10.1]) / np.mean([3.3, 3.2, 3.4, 3.1]))
    assert snp["kernel_efficiency"] == pytest.approx(snp["speedup_median"] / (4.6 / 1.3))
    assert doc["protocol"]["interleaved"] is False and doc["protocol"]["backend"] == "trt"
    assert doc["environment"]["measured_elsewhere"] and doc["environment"]["jetson"]["power_mode"]["mode"] == "MAXN"
    assert doc["notice"] and "random weights" in (out / "results.md").read_text()
    assert (out / "results.png").stat().st_size > 0


def test_export_times_and_trtexec_log(cli, tmp_path, onnx_pair):
    (tmp_path / "wide.times.json").write_text(json.dumps(EXPORT_TIMES))
    (tmp_path / "wide.onnx").write_bytes(onnx_pair[0].read_bytes())  # the graph the engine was built from
    (tmp_path / "narrow.log").write_text(TRTEXEC_LOG)
    out = tmp_path / "out"
    rc, stdout, err = cli("bench", tmp_path / "wide.times.json", tmp_path / "narrow.log", "--out", out)
    assert rc == 0, err
    doc = json.loads((out / "results.json").read_text())
    validate(doc)
    wide, narrow = doc["candidates"]
    compute = np.array([r["computeMs"] for r in EXPORT_TIMES])
    assert wide["latency_ms"]["mean"] == pytest.approx(compute.mean()) and wide["latency_ms"]["n"] == 6
    assert wide["gmacs"] == pytest.approx(0.015854208) and narrow["gmacs"] is None
    assert narrow["latency_ms"] == {"min": 0.9, "max": 1.3, "mean": 1.0, "median": 0.98, "p90": 1.1, "p95": 1.15,
                                    "p99": 1.2}
    assert narrow["speedup_median"] == pytest.approx(np.median(compute) / 0.98)
    assert narrow["kernel_efficiency"] is None  # no GMACs for the log
    assert "| narrow |" in (out / "results.md").read_text()
