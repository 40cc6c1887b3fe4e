"""How long ``prune --target-gmacs`` takes with measured group weights against ``--allocation uniform``.

    python benchmarks/prune_time.py [--model deit_small_patch16_224] [--target-gmacs 1.3] [--repeats 3]

Per repeat, interleaved in one process: :func:`snp_edge.api.prune` with the default allocation and group
weights, then with ``allocation="uniform"`` (scoring, allocation, surgery; model loading and calibration
images outside the clock), then the sensitivity analysis alone (the loss probes of every group, through
:func:`snp_edge.allocation.measure_loss` as the allocator runs them). Random weights: the time does not
depend on them. Prints min/median/max seconds, the median ratio, the load average, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from snp_edge.allocation import _groups, measure_loss, structure
from snp_edge.api import budget_of, prune
from snp_edge.arch import arch_of
from snp_edge.calib import load_calibration
from snp_edge.criteria import DEFAULT_CRITERIA, ScoreOptions, compute_scores
from snp_edge.models import load_model
from snp_edge.sensitivity import KLProbe


def _stats(times: list[float]) -> dict:
    return {"min_s": min(times), "median_s": statistics.median(times), "max_s": max(times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="deit_small_patch16_224")
    p.add_argument("--target-gmacs", type=float, default=1.3)
    p.add_argument("--calib-images", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    handle = load_model(args.model, "random")
    cal = load_calibration(None, args.calib_images, handle.data_config)
    common = dict(target_gmacs=args.target_gmacs, calib_images=args.calib_images)
    arms = {"default": {}, "uniform": {"allocation": "uniform"}}
    times: dict[str, list[float]] = {name: [] for name in (*arms, "sensitivity")}
    load = [os.getloadavg()]
    scores = compute_scores(handle.model.eval(), cal.images, ScoreOptions(criteria=dict(DEFAULT_CRITERIA)))
    shell = structure(arch_of(handle.model), scores)
    cost = budget_of(handle, target_gmacs=args.target_gmacs).cost
    recipe = None
    for _ in range(args.repeats):
        for name, extra in arms.items():
            start = time.perf_counter()
            result = prune(handle, **common, **extra)
            times[name].append(time.perf_counter() - start)
            recipe = recipe or (result.recipe["target"] if name == "default" else None)
        start = time.perf_counter()
        probe = KLProbe(handle, scores, cal.images)
        measure_loss(_groups(shell, scores, 1, cost), shell, probe)
        times["sensitivity"].append(time.perf_counter() - start)
        load.append(os.getloadavg())
    ratio = statistics.median(times["default"]) / statistics.median(times["uniform"])
    for name, ts in times.items():
        print(f"{name}: min {min(ts):.1f} s, median {statistics.median(ts):.1f} s, max {max(ts):.1f} s")
    print(f"default / uniform (medians): {ratio:.2f}x; load average (1, 5, 15 min) before and after each repeat: "
          f"{[tuple(round(x, 2) for x in avg) for avg in load]}")
    print(json.dumps({"model": args.model, "target_gmacs": args.target_gmacs, "calib_images": args.calib_images,
                      "default": recipe, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                      "torch_threads": torch.get_num_threads(), "load": load, "ratio": ratio,
                      "results": {k: _stats(v) for k, v in times.items()}}))


if __name__ == "__main__":
    main()
