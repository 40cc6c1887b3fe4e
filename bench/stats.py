"""Latency statistics over per-run times (ms), without numpy so results stay plain floats."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(times_ms: Sequence[float]) -> dict[str, float] | None:
    """n, mean, median, p90, p99, min, max and (population) std of per-run latencies, all in ms.

    None when there are no runs (e.g. a run interrupted during warm-up).
    """
    if not times_ms:
        return None
    n = len(times_ms)
    mean = math.fsum(times_ms) / n
    return {
        "n": n,
        "mean": mean,
        "median": percentile(times_ms, 50),
        "p90": percentile(times_ms, 90),
        "p99": percentile(times_ms, 99),
        "min": min(times_ms),
        "max": max(times_ms),
        "std": math.sqrt(math.fsum((t - mean) ** 2 for t in times_ms) / n),
    }


def throughput(batch: int, mean_ms: float) -> float:
    """Images per second at ``batch`` images per run and a mean latency of ``mean_ms``."""
    return batch * 1000.0 / mean_ms


def speedups(base: dict[str, float], cand: dict[str, float], base_gmacs: float | None,
             cand_gmacs: float | None) -> dict[str, float | None]:
    """Speed-up of ``cand`` over ``base`` (latency summaries) by median and by mean, and kernel efficiency.

    Kernel efficiency = speed-up (median) / (base GMACs / candidate GMACs): 1.0 means latency fell exactly
    in proportion to the multiply-accumulates removed; below 1.0, the smaller kernels run less efficiently.
    """
    by_median = base["median"] / cand["median"]
    by_mean = base["mean"] / cand["mean"]
    eff = None
    if base_gmacs and cand_gmacs:
        eff = by_median / (base_gmacs / cand_gmacs)
    return {"speedup_median": by_median, "speedup_mean": by_mean, "kernel_efficiency": eff}
