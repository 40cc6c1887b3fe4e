"""The latency statistics (snp_edge.engines.common.stats, shared by host and device) against numpy."""

import numpy as np
import pytest
from snp_edge.engines.common.stats import percentile, speedups, summarize, throughput

ARRAYS = [[5.0], [2.0, 1.0], [3.0, 1.0, 2.0, 10.0], list(np.random.default_rng(0).gamma(2.0, 3.0, 1001))]


@pytest.mark.parametrize("values", ARRAYS)
@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy(values, q):
    assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12)


@pytest.mark.parametrize("values", ARRAYS)
def test_summarize_matches_numpy(values):
    s = summarize(values)
    a = np.asarray(values)
    assert s["n"] == len(values)
    for key, ref in (("mean", a.mean()), ("median", np.median(a)), ("p90", np.percentile(a, 90)),
                     ("p95", np.percentile(a, 95)), ("p99", np.percentile(a, 99)), ("min", a.min()), ("max", a.max()), ("std", a.std())):
        assert s[key] == pytest.approx(ref, rel=1e-12, abs=1e-12), key


def test_empty_and_invalid():
    from snp_edge.engines.common.errors import EnginesError

    assert summarize([]) is None
    with pytest.raises(EnginesError):
        percentile([], 50)
    with pytest.raises(EnginesError):
        percentile([1.0], 101)
    for bad in ([float("nan")], [1.0, float("inf")], [-1.0]):
        with pytest.raises(EnginesError, match="finite and >= 0"):
            summarize(bad)


def test_throughput_and_speedups():
    assert throughput(64, 32.0) == 2000.0
    base = {"mean": 10.0, "median": 8.0}
    cand = {"mean": 5.0, "median": 2.0}
    s = speedups(base, cand, base_gmacs=4.0, cand_gmacs=1.0)
    assert s == {"speedup_median": 4.0, "speedup_mean": 2.0, "kernel_efficiency": 1.0}
    assert speedups(base, cand, None, 1.0)["kernel_efficiency"] is None
