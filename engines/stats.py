"""Latency statistics for bench output. Inputs are per-run latencies in milliseconds; pure Python."""

import math

from engines.errors import EnginesError


def percentile(values, q):
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise EnginesError("no latencies to summarize")
    if not 0 <= q <= 100:
        raise EnginesError("percentile {} is outside [0, 100]".format(q))
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(latencies_ms, batch):
    """``{runs, mean_ms, median_ms, p90_ms, p99_ms, min_ms, max_ms, std_ms, throughput_img_s}`` for runs of
    ``batch`` images; throughput = batch * 1000 / mean_ms."""
    values = [float(v) for v in latencies_ms]
    if not values:
        raise EnginesError("no latencies to summarize")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise EnginesError("latencies must be finite and >= 0 ms")
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {
        "runs": len(values),
        "batch": batch,
        "mean_ms": mean,
        "median_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "min_ms": min(values),
        "max_ms": max(values),
        "std_ms": std,
        "throughput_img_s": batch * 1000.0 / mean if mean > 0 else None,
    }
