"""Issue 20 #5: impossible numbers. A device measurement whose summary contradicts itself (a median of -3 ms
beside a min of 0.205, a median above its p95) and a latency table whose terms are 0 ms are refused with the
field named (status 2, one line, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from snp_edge.engines import latency_table as lt

from tests.bench.test_bench_ingest import device_sweep_json

from .conftest import TINY, assert_one_line_error, snapshot


def _sweep(change):
    doc = device_sweep_json(3.0, True, 1.3)
    doc["sections"][0]["e2e_ms"] = {"min": 0.205, "median": 0.3, "p95": 0.4, "max": 0.5, "mean": 0.31}
    change(doc["sections"][0])
    return doc


SWEEP_CASES = {
    "median-negative": (lambda s: s["e2e_ms"].__setitem__("median", -3.0),
                        "field sections[0].e2e_ms.median: expected a finite latency > 0 ms, got -3.0"),
    "median-above-p95": (lambda s: s["e2e_ms"].__setitem__("median", 0.45),
                         "field sections[0].e2e_ms.p95: expected at least median (0.45 ms), got 0.4"),
    "min-above-median": (lambda s: s["e2e_ms"].__setitem__("min", 0.35),
                         "field sections[0].e2e_ms.median: expected at least min (0.35 ms), got 0.3"),
    "mean-outside": (lambda s: s["e2e_ms"].__setitem__("mean", 9.0),
                     "field sections[0].e2e_ms.mean: expected between min (0.205) and max (0.5 ms), got 9.0"),
    "gpu-zero": (lambda s: s.__setitem__("gpu_ms", {"min": 0.0, "median": 1.0, "max": 2.0}),
                 "field sections[0].gpu_ms.min: expected a finite latency > 0 ms, got 0.0"),
}


@pytest.mark.parametrize("case", SWEEP_CASES)
def test_device_measurement_is_internally_consistent(snp, work, case):
    change, message = SWEEP_CASES[case]
    (work / "nano.json").write_text(json.dumps(_sweep(change)))
    before = snapshot(work)
    result = snp("bench", work / "nano.json", "--out", work / "report")
    assert_one_line_error(result, 2, message, "bench")
    assert snapshot(work) == before


def test_consistent_measurement_still_reports(snp, work):
    (work / "nano.json").write_text(json.dumps(_sweep(lambda s: None)))
    assert snp("bench", work / "nano.json", "--out", work / "report").status == 0


def test_trtexec_log_min_above_median(snp, work):
    (work / "m.log").write_text("[I] === Performance summary ===\n[I] GPU Compute Time: min = 1.1 ms, max = 1.3 ms, "
                                "mean = 1.0 ms, median = 0.98 ms, percentile(99%) = 1.2 ms\n")
    assert_one_line_error(snp("bench", work / "m.log", "--out", work / "report"), 2,
                          "field gpu_compute_ms.median: expected at least min (1.1 ms), got 0.98", "bench")


def _table(path, zero_term=None):
    from snp_edge.latency import geometry
    from snp_edge.models import load_model

    base = load_model("deit_tiny_patch16_224", "random", {"img_size": 32, "patch_size": 4, "depth": 2,
                                                          "embed_dim": 64, "num_heads": 2, "num_classes": 10})
    geo = geometry(base.model, base.base_model)
    grid = lt.default_grid(geo, 2, all_heads=False)
    terms, _, _ = lt.measure_table(geo, grid, lambda term, w: 0.01 * sum(w.values()))
    doc = lt.make_table(geo, grid, terms, None, "ort", "fp32", 1, 1, "cpu", {}, {}, "test")
    if zero_term:  # every grid point of that term 0.0 ms
        doc["terms"][zero_term]["ms"] = np.zeros_like(np.asarray(doc["terms"][zero_term]["ms"])).tolist()
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.slow
def test_latency_table_with_zero_terms_is_refused(snp, work):
    """`prune --target-speedup` accepted a table whose stem terms were all 0.0."""
    table = _table(work / "table.json", zero_term="stem")
    before = snapshot(work)
    result = snp("prune", *TINY, "--target-speedup", "1.5", "--latency-table", table, "--criterion", "l1",
                 "--out", work / "out")
    assert_one_line_error(result, 2, "terms.stem.ms has a latency <= 0 ms at grid index [0]; every term must be > 0",
                          "prune")
    assert snapshot(work) == before


def test_profile_accepts_what_it_measured():
    """`snp-edge profile` of a tiny model measured the whole grid, then refused its own table (factor 0.139)."""
    points = [{"label": "unpruned", "sum_ms": 10.0, "measured_ms": 1.39},
              {"label": "half", "sum_ms": 6.0, "measured_ms": 0.85}, {"label": "quarter", "sum_ms": 3.0,
                                                                      "measured_ms": 0.43}]
    factor, offset = lt.fit_calibration(points)
    assert factor < 0.2  # the fit alone gives a factor check_table refuses
    cal = lt.accepted_calibration(points, factor, offset)
    assert cal["factor"] == 0.2 and cal["fitted_factor"] == factor and 0 <= cal["offset_ms"] < cal["measured_ms"]
    inside = lt.accepted_calibration(points, 1.1, 0.2)
    assert inside["factor"] == 1.1 and "fitted_factor" not in inside


@pytest.mark.slow
def test_measured_table_with_a_tiny_models_factor_is_accepted(work):
    table = json.loads(_table(work / "t.json").read_text())
    geo_points = [{"label": "unpruned", "sum_ms": 10.0, "measured_ms": 1.39}]
    table["calibration"] = lt.accepted_calibration(geo_points, 0.139, 0.0)
    lt.check_table(table)  # accepted: factor clamped to 0.2, fitted value kept
