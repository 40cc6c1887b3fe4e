"""Latency statistics against numpy on real latency-like samples."""

import numpy as np
import pytest

from engines.errors import EnginesError
from engines.stats import percentile, summarize


def test_percentiles_match_numpy():
    values = list(np.random.default_rng(0).gamma(9.0, 2.2, size=1001))
    for q in (0, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_summarize():
    lat = [2.0, 1.0, 4.0, 3.0]
    s = summarize(lat, batch=8)
    assert s["runs"] == 4 and s["mean_ms"] == 2.5 and s["median_ms"] == 2.5
    assert s["min_ms"] == 1.0 and s["max_ms"] == 4.0
    assert s["p90_ms"] == pytest.approx(np.percentile(lat, 90)) and s["p99_ms"] == pytest.approx(3.97)
    assert s["std_ms"] == pytest.approx(np.std(lat))
    assert s["throughput_img_s"] == pytest.approx(8 * 1000 / 2.5)


@pytest.mark.parametrize("values", [[], [1.0, float("nan")], [-1.0]])
def test_bad_latencies(values):
    with pytest.raises(EnginesError):
        summarize(values, 1)
