"""``engines bench`` with the ONNX Runtime backend on a real bundle: the batch sweep, statistics, the JSON
the host ingests (model block, one section per batch size), preprocessing in the end-to-end time."""

import json

import pytest
from snp_edge.engines.benchmark import default_batches
from snp_edge.engines.cli import main


def test_default_batches():
    assert default_batches(1) == [1] and default_batches(8) == [1, 2, 4, 8]
    assert default_batches(128) == [1, 2, 4, 8, 16, 32, 64, 128] and default_batches(6) == [1, 2, 4, 6]


def test_onnxruntime_sweep_json(bundle, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", str(bundle), "--backend", "onnxruntime", "--warmup", "2", "--runs", "15",
                 "--threads", "1", "--json-file", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "snp-edge-device-bench/3" and doc["backend"]["backend"] == "onnxruntime"
    assert doc["model"]["gmacs"] == 0.001 and doc["model"]["params"] == 928 and doc["model"]["num_classes"] == 10
    assert [s["batch"] for s in doc["sections"]] == [1, 2, 4, 8]  # the target's profile maximum
    for s in doc["sections"]:
        assert s["gpu_ms"] is None and s["e2e_ms"]["n"] == 15 and len(s["e2e_latencies_ms"]) == 15
        e = s["e2e_ms"]
        assert e["min"] <= e["median"] <= e["p90"] <= e["p95"] <= e["p99"] <= e["max"]
        assert s["throughput_e2e_img_s"] == pytest.approx(s["batch"] * 1000 / e["mean"])
    assert doc["protocol"]["batches"] == [1, 2, 4, 8] and doc["telemetry"]["source"] in ("none", "sysfs")


def test_preprocessing_in_the_end_to_end_time(tmp_path):
    from tests.engines.device_fixtures import make_bundle

    bundle = make_bundle(tmp_path / "b", with_images=True)
    out = tmp_path / "bench.json"
    assert main(["bench", str(bundle), "--backend", "onnxruntime", "--batch", "2", "--warmup", "1", "--runs", "5",
                 "--preprocess", "--telemetry-ms", "0", "--json-file", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["protocol"]["preprocess_in_e2e"] and [s["batch"] for s in doc["sections"]] == [2]
    assert main(["bench", str(bundle), "--backend", "onnxruntime", "--cuda-graph"]) == 2  # TensorRT only
