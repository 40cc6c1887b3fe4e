"""Latency statistics and benchmark protocol defaults, shared by the host bench and the device bench.

Inputs are per-run latencies in milliseconds; pure Python (no numpy), so results stay plain floats and the
device needs nothing for them.
"""

import math

from .errors import EnginesError

# The SNP paper's protocol (200 untimed runs, then 1000 timed), the main job's shorter one, and a smoke test.
PROTOCOLS = {
    "paper": {"warmup": 200, "runs": 1000},
    "run": {"warmup": 50, "runs": 300},
    "quick": {"warmup": 10, "runs": 30},
}
PERCENTILES = (50, 90, 95, 99)
STAT_KEYS = ("n", "mean", "median", "p90", "p95", "p99", "min", "max", "std")


def percentile(values, q):
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise EnginesError("no latencies to summarize")
    if not 0 <= q <= 100:
        raise EnginesError(f"percentile {q} is outside [0, 100]")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(times_ms):
    """``{n, mean, median, p90, p95, p99, min, max, std}`` (ms; std is the population std) of per-run
    latencies; None when there are none (a run interrupted during warm-up). Refuses NaN, Inf and negatives."""
    values = [float(v) for v in times_ms]
    if not values:
        return None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise EnginesError("latencies must be finite and >= 0 ms")
    n = len(values)
    mean = math.fsum(values) / n
    return {
        "n": n,
        "mean": mean,
        "median": percentile(values, 50),
        "p90": percentile(values, 90),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
        "std": math.sqrt(math.fsum((v - mean) ** 2 for v in values) / n),
    }


def throughput(batch, mean_ms):
    """Images per second at ``batch`` images per run and a mean latency of ``mean_ms`` (None if 0)."""
    return batch * 1000.0 / mean_ms if mean_ms > 0 else None


def speedups(base, cand, base_gmacs=None, cand_gmacs=None):
    """Speed-up of ``cand`` over ``base`` (summaries) by median and by mean, and kernel efficiency.

    Kernel efficiency = speed-up (median) / (base GMACs / candidate GMACs): 1.0 means latency fell exactly
    in proportion to the multiply-accumulates removed; below 1.0, the smaller kernels run less efficiently.
    """
    by_median = base["median"] / cand["median"]
    by_mean = base["mean"] / cand["mean"]
    eff = by_median / (base_gmacs / cand_gmacs) if base_gmacs and cand_gmacs else None
    return {"speedup_median": by_median, "speedup_mean": by_mean, "kernel_efficiency": eff}


ORDERED_KEYS = ("min", "median", "p90", "p95", "p99", "max")  # each at most the next


def summary_problem(stats):
    """The first inconsistency in a latency summary (:func:`summarize`'s keys, any subset), as ``(key,
    expected)``, or None: every latency a finite number > 0 ms, min <= median <= p90 <= p95 <= p99 <= max,
    mean between min and max."""
    if not isinstance(stats, dict):
        return "", "an object of latency statistics in ms"
    for key in ("mean",) + ORDERED_KEYS:
        value = stats.get(key)
        if key in stats and (isinstance(value, bool) or not isinstance(value, (int, float)) or
                             not math.isfinite(value) or value <= 0):
            return key, "a finite latency > 0 ms"
    present = [k for k in ORDERED_KEYS if k in stats]
    for low, high in zip(present, present[1:]):  # noqa: B905 (strict= is 3.10+)
        if stats[low] > stats[high]:
            return high, "at least {} ({:g} ms)".format(low, stats[low])
    if "mean" in stats and "min" in stats and "max" in stats and not stats["min"] <= stats["mean"] <= stats["max"]:
        return "mean", "between min ({:g}) and max ({:g} ms)".format(stats["min"], stats["max"])
    return None
