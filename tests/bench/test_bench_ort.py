"""End to end on real measurements: two tiny ONNX models (one half the width) through ONNX Runtime."""

import json

import numpy as np
import pytest
from snp_edge.bench.candidates import from_spec
from snp_edge.bench.report import write_report
from snp_edge.bench.run import BenchConfig, run_bench
from snp_edge.bench.schema import RESULTS_SCHEMA, SCHEMA_VERSION, validate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(onnx_pair, tmp_path_factory):
    """``snp-edge bench wide.onnx narrow.onnx --quick`` -> (exit status, stdout, output folder)."""
    from snp_edge.cli import main

    out = tmp_path_factory.mktemp("run") / "res"
    rc = main(["bench", str(onnx_pair[0]), str(onnx_pair[1]), "--quick", "--threads", "1",
               "--top1", "wide=75.5", "--out", str(out)])
    return rc, out


def test_outputs_written_and_valid(quick_run):
    rc, out = quick_run
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    validate(doc)
    assert doc["schema_version"] == SCHEMA_VERSION == RESULTS_SCHEMA["properties"]["schema_version"]["const"]
    assert doc["partial"] is False and doc["notice"] is None
    p = doc["protocol"]
    assert (p["backend"], p["warmup"], p["runs"], p["threads"], p["interleaved"]) == ("ort", 10, 30, 1, True)
    settings = doc["candidates"][0]["settings"]
    assert settings["intra_op_num_threads"] == 1
    assert settings["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert settings["execution_mode"] == "ORT_SEQUENTIAL"
    assert doc["environment"]["cpu"]["logical_cores"] >= 1
    assert (out / "results.png").read_bytes().startswith(PNG_MAGIC)


def test_statistics_of_real_runs(quick_run):
    _, out = quick_run
    doc = json.loads((out / "results.json").read_text())
    wide, narrow = doc["candidates"]
    for c in (wide, narrow):
        t = np.asarray(c["times_ms"])
        lat = c["latency_ms"]
        assert lat["n"] == len(t) == 30 and (t > 0).all()
        assert lat["mean"] == pytest.approx(t.mean()) and lat["median"] == pytest.approx(np.median(t))
        assert lat["p90"] == pytest.approx(np.percentile(t, 90)) and lat["p99"] == pytest.approx(np.percentile(t, 99))
        assert (lat["min"], lat["max"]) == (t.min(), t.max())
        assert c["throughput_ips"] == pytest.approx(1000 / t.mean())
    assert wide["speedup_median"] == wide["speedup_mean"] == wide["kernel_efficiency"] == 1.0
    assert narrow["speedup_median"] == pytest.approx(wide["latency_ms"]["median"] / narrow["latency_ms"]["median"])
    assert narrow["speedup_median"] > 1.0  # a quarter of the MACs: faster, even on a busy machine
    macs_ratio = wide["gmacs"] / narrow["gmacs"]
    assert 3.5 < macs_ratio < 4.5
    assert narrow["kernel_efficiency"] == pytest.approx(narrow["speedup_median"] / macs_ratio)
    assert wide["top1"] == 75.5 and narrow["top1"] is None


def test_markdown_has_one_row_per_candidate(quick_run):
    _, out = quick_run
    md = (out / "results.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| Model")]
    assert [r.split("|")[1].strip() for r in rows] == ["wide", "narrow"]
    assert "| 75.50 |" in rows[0] and rows[0].endswith("| 1.00x | 1.00x | 1.00 |")


def test_refuses_to_overwrite_without_force(quick_run, onnx_pair, cli):
    _, out = quick_run
    before = (out / "results.json").read_text()
    rc, _, err = cli("bench", onnx_pair[1], "--quick", "--out", out)
    assert rc == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "results.json").read_text() == before
    rc, _, _ = cli("bench", onnx_pair[1], "--runs", 3, "--warmup", 0, "--out", out, "--force")
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    assert [c["label"] for c in doc["candidates"]] == ["narrow"] and doc["protocol"]["runs"] == 3


def test_ctrl_c_keeps_what_was_measured(onnx_pair, tmp_path):
    """A KeyboardInterrupt from the progress hook (called by the runner loop after each block)."""
    seen = []

    def interrupt_after_40(done, total):
        seen.append(done)
        if done >= 40:
            raise KeyboardInterrupt

    cands = [from_spec(str(p)) for p in onnx_pair]
    cfg = BenchConfig(warmup=5, runs=50, block=5, threads=1)
    doc = run_bench(cands, cfg, progress=interrupt_after_40)
    assert doc["partial"] is True
    assert seen[-1] < 2 * (5 + 50)
    n = [c["latency_ms"]["n"] for c in doc["candidates"]]
    assert sum(n) == seen[-1] - 2 * 5 and all(0 < k < 50 for k in n)
    paths = write_report(doc, tmp_path / "partial")
    validate(json.loads(paths[0].read_text()))
    assert "PARTIAL" in paths[1].read_text()


def test_ctrl_c_during_warmup_has_no_latencies(onnx_pair, tmp_path):
    def interrupt(done, total):
        raise KeyboardInterrupt

    doc = run_bench([from_spec(str(onnx_pair[0]))], BenchConfig(warmup=5, runs=5, threads=1), progress=interrupt)
    assert doc["partial"] and doc["candidates"][0]["latency_ms"] is None
    write_report(doc, tmp_path)
    assert "| wide | - |" in (tmp_path / "results.md").read_text()


def test_cli_exit_status_when_interrupted(onnx_pair, tmp_path, cli, monkeypatch):
    import snp_edge.cli.bench

    def bar():
        def update(done, total):
            raise KeyboardInterrupt

        return update, lambda: None

    monkeypatch.setattr(snp_edge.cli.bench, "progress_bar", bar)
    rc, out, err = cli("bench", onnx_pair[0], "--quick", "--out", tmp_path)
    assert rc == 130 and "partial" in err
    assert json.loads((tmp_path / "results.json").read_text())["partial"] is True


def test_batch_sets_input_and_throughput(onnx_pair):
    doc = run_bench([from_spec(str(onnx_pair[1]))], BenchConfig(batch=3, warmup=2, runs=5, threads=1))
    c = doc["candidates"][0]
    assert c["settings"]["input_shape"] == [3, 3, 32, 32]
    assert c["throughput_ips"] == pytest.approx(3 * 1000 / c["latency_ms"]["mean"])
    assert c["gmacs"] == pytest.approx(0.004, rel=0.1)  # per image, whatever the batch
