"""The parity gate's maths on real logit arrays."""

import numpy as np
import pytest
from snp_edge.engines.common.errors import EnginesError
from snp_edge.engines.verify import TOLERANCES, compare_logits, tolerance_for


def _golden(n=64, classes=1000, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, classes)).astype(np.float32) * 2.0
    logits[np.arange(n), rng.integers(0, classes, n)] += 8.0  # a clear winner per image, scale ~ 14
    return logits


def test_fp16_rounding_passes():
    golden = _golden()
    engine = golden.astype(np.float16).astype(np.float32)  # FP16 storage of every logit
    report = compare_logits(engine, golden, TOLERANCES["fp16"])
    assert report["passed"] and report["failures"] == []
    assert report["top1_agreement"] == 1.0 and report["flips"] == []
    assert 0 < report["max_abs_err"] <= 0.01 * report["logit_scale"]
    assert report["max_rel_err"] < 2e-3


def test_error_above_tolerance_fails_with_numbers():
    golden = _golden()
    engine = golden.copy()
    engine[3, 7] += 0.05 * np.abs(golden).max()  # 5 % of the logit scale: beyond fp16's 2 %
    report = compare_logits(engine, golden, TOLERANCES["fp16"])
    assert not report["passed"]
    assert report["failures"][0].startswith("max abs error")
    assert "0.02 x logit scale" in report["failures"][0]


def test_top1_flip_is_reported_with_margin():
    golden = _golden(n=8)
    engine = golden.copy()
    winner = int(np.argmax(golden[5]))
    engine[5, (winner + 1) % 1000] = golden[5, winner] + 1.0
    report = compare_logits(engine, golden, tolerance_for("fp16", atol_frac=10.0))
    assert report["top1_agreement"] == pytest.approx(7 / 8)
    assert report["flips"][0]["index"] == 5 and report["flips"][0]["golden_class"] == winner
    assert report["flips"][0]["golden_margin"] > 0
    assert not report["passed"] and "top-1 agreement 0.8750 < 0.99 (flipped: #5" in report["failures"][0]
    assert compare_logits(engine, golden, tolerance_for("fp16", atol_frac=10.0, min_top1=0.8))["passed"]


def test_nan_fails():
    golden = _golden(n=4)
    engine = golden.copy()
    engine[0, 0] = np.nan
    report = compare_logits(engine, golden, TOLERANCES["fp16"])
    assert not report["finite"] and not report["passed"]
    assert "NaN or Inf" in report["failures"][0]


def test_fp32_tolerance_is_tighter():
    golden = _golden()
    engine = golden + 0.005 * np.abs(golden).max()  # 0.5 % of the scale: fine for fp16, not for fp32
    assert compare_logits(engine, golden, tolerance_for("fp16"))["passed"]
    assert not compare_logits(engine, golden, tolerance_for("fp32"))["passed"]
    assert tolerance_for("fp16-fp32norms") == TOLERANCES["fp16"]


def test_small_logits_use_unit_scale():
    golden = np.full((2, 3), 0.01, dtype=np.float32)
    golden[:, 0] = 0.02
    golden[1, 1] = 0.015  # the two inputs' logits differ (identical rows are degenerate outputs)
    report = compare_logits(golden + 0.005, golden, TOLERANCES["fp16"])
    assert report["logit_scale"] == 1.0 and report["atol"] == pytest.approx(0.02) and report["passed"]


def test_shape_mismatch():
    with pytest.raises(EnginesError, match=r"do not match golden outputs \(8, 1000\)"):
        compare_logits(np.zeros((8, 10)), np.zeros((8, 1000)), TOLERANCES["fp16"])


def test_int8_excuses_only_flips_on_near_ties_its_tolerance_allows():
    """INT8: a flip on a row whose golden top-1/top-2 margin is within 2 x atol is reported as a near tie and
    not counted; a flip on a clear margin still fails; fp16 counts both."""
    golden = _golden(n=8)
    scale = max(float(np.abs(golden).max()), 1.0)
    top2 = np.argsort(-golden, axis=1)[:, :2]
    tie = golden.copy()
    tie[3, top2[3, 1]] = golden[3, top2[3, 0]] - 0.01 * scale  # margin 0.01 x scale <= 2 x 0.05
    engine = tie.copy()
    engine[3, top2[3, 1]], engine[3, top2[3, 0]] = tie[3, top2[3, 0]], tie[3, top2[3, 1]]  # swapped: err 0.01 x scale
    report = compare_logits(engine, tie, tolerance_for("int8"))
    assert report["passed"] and report["top1_agreement"] == 1.0
    assert [(f["index"], f["near_tie"]) for f in report["flips"]] == [(3, True)]
    assert not compare_logits(engine, tie, tolerance_for("fp16", atol_frac=1.0))["passed"]
    clear = golden.copy()
    clear[5] = 0.0
    clear[5, 0], clear[5, 1] = 10.0, 10.0 - 0.2 * scale  # margin 0.2 x scale > 2 x 0.05: a real flip
    engine = clear.copy()
    engine[5, 1] = 10.0 + 0.01 * scale
    report = compare_logits(engine, clear, tolerance_for("int8"))
    assert report["flips"][0]["near_tie"] is False and report["top1_agreement"] == 7 / 8
    assert any(f.startswith("top-1 agreement 0.8750 < 0.99") for f in report["failures"])
