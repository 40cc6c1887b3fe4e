"""bench reports the latency a model's table predicted beside the latency it measures."""

from __future__ import annotations

import json

from snp_edge.engines import latency_table as lt

from snp_edge import prune
from snp_edge.latency import geometry
from snp_edge.models import load_model
from snp_edge.saved import write_pruned

ARGS = {"img_size": 32, "depth": 2}  # 2 blocks: a small model to export and time


def _table(handle, path):
    geo = geometry(handle.model, handle.base_model)
    grid = lt.default_grid(geo, 2, all_heads=False)
    terms, _, _ = lt.measure_table(geo, grid, lambda term, w: 0.01 * sum(w.values()))
    path.write_text(json.dumps(lt.make_table(geo, grid, terms, None, "ort", "fp32", 1, 1, "cpu", {}, {}, "test")))
    return path


def test_bench_shows_predicted_vs_measured(tmp_path):
    from snp_edge.bench.candidates import from_spec
    from snp_edge.bench.report import markdown
    from snp_edge.bench.run import BenchConfig, run_bench

    base = load_model("deit_tiny_patch16_224", "random", ARGS)
    table = _table(base, tmp_path / "table.json")
    # what bench reports is under test here, not the group weights (tests/host/test_sensitivity.py,
    # test_fisher_probe.py): the MAC-proportional weights need no probes
    result = prune(base, target_speedup=1.5, latency_table=table, criteria="l1", calib_images=8, group_weight="macs")
    assert 1.5 <= result.summary["predicted_speedup"] <= 1.5 / 0.98
    from snp_edge.summary import format_summary

    assert "ms predicted (" in format_summary(result.summary)
    folder = tmp_path / "pruned"
    folder.mkdir()
    write_pruned(result.handle, folder, extra={"summary": result.summary, "pruning": result.recipe})
    doc = run_bench([from_spec(str(folder))], BenchConfig(runs=5, warmup=1, threads=1))
    row = doc["candidates"][0]
    assert row["predicted_ms"] == result.summary["predicted_ms_after"]
    assert row["predicted_for"] == {"backend": "ort", "precision": "fp32", "batch": 1, "threads": 1}
    assert abs(row["predicted_error"] - (row["latency_ms"]["median"] / row["predicted_ms"] - 1)) < 1e-12
    text = markdown(doc)
    assert "| Predicted ms | Measured median ms |" in text and "ort, fp32, batch 1, threads 1" in text
