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


def device_sweep_json(scale, pruned, gmacs):
    """What ``python3 -m engines bench BUNDLE --json-file`` writes now (schema /3, batch sweep 1, 2, 4)."""
    def section(batch):
        gpu = [scale * batch * (1 + 0.01 * i) for i in range(10)]
        return {"batch": batch, "gpu_ms": None, "e2e_ms": {"median": gpu[5] + 0.4}, "gpu_latencies_ms": gpu,
                "e2e_latencies_ms": [t + 0.4 for t in gpu],
                "telemetry": {"energy_mj_per_image": 12.5 * scale, "throttled": batch == 4,
                              "throttle_reasons": ["GPU clock fell to 614 MHz (peak 921 MHz)"] if batch == 4 else []}}
    return {"schema": "snp-edge-device-bench/3", "created": "2026-11-26T10:00:00Z", "engine": "/b/x.engine",
            "target": "jetson-nano", "precision": "fp16", "backend": {"backend": "tensorrt"},
            "model": {"base_model": "deit_small_patch16_224", "pruned": pruned, "gmacs": gmacs, "params": 2000,
                      "accuracy_meaningful": False, "notice": "random weights", "num_classes": 1000},
            "protocol": {"warmup_runs": 50, "runs": 10, "batches": [1, 2, 4], "cuda_graph": False,
                         "preprocess_in_e2e": False},
            "sections": [section(b) for b in (1, 2, 4)], "telemetry": {"source": "tegrastats"},
            "env": {"jetson": {"power_mode": {"mode": "MAXN", "id": 0}}}}


def test_device_batch_sweep_gives_one_section_per_batch_size(cli, tmp_path):
    (tmp_path / "ds.json").write_text(json.dumps(device_sweep_json(10.0, False, 4.6)))
    (tmp_path / "snp.json").write_text(json.dumps(device_sweep_json(3.0, True, 1.3)))
    out = tmp_path / "out"
    rc, stdout, err = cli("bench", tmp_path / "ds.json", tmp_path / "snp.json", "--out", out)
    assert rc == 0, err
    doc = json.loads((out / "results.json").read_text())
    validate(doc)
    docs = [doc] + doc["by_batch"]
    assert [d["protocol"]["batch"] for d in docs] == [1, 2, 4]
    for d in docs:
        validate(d)
        base, snp = d["candidates"]
        assert (base["gmacs"], snp["gmacs"], snp["params"]) == (4.6, 1.3, 2000)
        assert snp["speedup_median"] == pytest.approx(10.0 / 3.0)
        assert snp["kernel_efficiency"] == pytest.approx((10.0 / 3.0) / (4.6 / 1.3))
        assert snp["throughput_ips"] == pytest.approx(d["protocol"]["batch"] * 1000 / snp["latency_ms"]["mean"])
    md = (out / "results.md").read_text()
    assert md.count("snp-edge bench: trt on cuda, batch") == 3 and "## snp-edge bench: trt on cuda, batch 4" in md
    assert "Latencies above: GPU time per run" in md and "37.5 mJ/image" in md and "THROTTLED: GPU clock" in md


def test_sweep_and_single_batch_files_meet_at_their_common_batch(cli, tmp_path):
    (tmp_path / "ds.json").write_text(json.dumps(device_sweep_json(10.0, False, 4.6)))
    old = device_bench_json([3.3, 3.2, 3.4, 3.1], True, 1.3)
    old["batch"] = 2
    (tmp_path / "old.json").write_text(json.dumps(old))
    rc, _, err = cli("bench", tmp_path / "ds.json", tmp_path / "old.json", "--out", tmp_path / "out")
    assert rc == 0, err
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["protocol"]["batch"] == 2 and "by_batch" not in doc
    old["batch"] = 3
    (tmp_path / "old.json").write_text(json.dumps(old))
    rc, _, err = cli("bench", tmp_path / "ds.json", tmp_path / "old.json", "--out", tmp_path / "out2")
    assert rc == 2 and "share no batch size" in err


def test_onnxruntime_device_run_is_reported_as_such(cli, tmp_path):
    """Issue 22 point 4: a device run with ONNX Runtime on the CPU (a real `engines bench` JSON) is titled and
    recorded as ort on cpu, fp32, with the device's environment and a p95 column."""
    from snp_edge.engines.cli import main as engines_main

    from tests.engines.device_fixtures import make_bundle

    bundle = make_bundle(tmp_path / "bundle")
    for name in ("a", "b"):
        rc = engines_main(["bench", str(bundle), "--backend", "onnxruntime", "--batch", "1", "--warmup", "1",
                           "--runs", "20", "--telemetry-ms", "0", "--json-file", str(tmp_path / f"{name}.json")])
        assert rc == 0
    device = json.loads((tmp_path / "a.json").read_text())
    rc, _, err = cli("bench", tmp_path / "a.json", tmp_path / "b.json", "--out", tmp_path / "out")
    assert rc == 0, err
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    validate(doc)
    p, env = doc["protocol"], doc["environment"]
    assert (p["backend"], p["device"], p["precision"]) == ("ort", "cpu", "fp32")
    assert env["os"] == device["env"]["os"] and env["cpu"]["model"] == device["env"]["cpu_model"]
    assert env["versions"]["onnxruntime"] == device["env"]["onnxruntime"] and env["versions"]["Pillow"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert md.startswith("# snp-edge bench: ort on cpu, batch 1, fp32\n") and "trt on cuda" not in md
    assert "| p90 ms | p95 ms | p99 ms |" in md and "CPU ?" not in md and "Environment: ?" not in md
    p95 = doc["candidates"][0]["latency_ms"]["p95"]
    assert f" {p95:.2f} |" in md.split("| a |")[1].split("\n")[0]
    # a TensorRT run beside it: refused, naming both
    (tmp_path / "trt.json").write_text(json.dumps(device_sweep_json(3.0, True, 1.3)))
    rc, _, err = cli("bench", tmp_path / "a.json", tmp_path / "trt.json", "--out", tmp_path / "out2")
    assert rc == 2 and "different backends (ort on cpu; trt on cuda)" in err
