"""How long ``prune --target-gmacs`` takes with measured group weights against ``--allocation uniform``.

    python benchmarks/prune_time.py [--model deit_small_patch16_224] [--target-gmacs 1.3] [--repeats 3]
                                    [--group-weight fisher] [--group-weights fisher loss]

Per repeat, interleaved in one process: :func:`snp_edge.api.prune` with the default allocation and group
weights (or ``--group-weight``), then with ``allocation="uniform"`` (scoring, allocation, surgery; model loading and calibration
images outside the clock), then the sensitivity analysis alone of each of ``--group-weights`` (default: the
default group weight): its probe (:data:`snp_edge.sensitivity.PROBES`) built and run by the ``score``
allocator as ``prune`` runs it (sublayers may go to zero width), the allocation included (the ``fisher``
probe measures a group's smallest width only where the allocation reaches it). Random weights: the time
does not depend on them. Prints min/median/max seconds, the median ratio, issue 21's two verdicts (ratio at
most :data:`MAX_RATIO`, sensitivity under :data:`MAX_SENSITIVITY_S` s on two quiet cores), the load
average, the machine, and one JSON line.

``--probes N`` instead times N single probes two ways, interleaved: the model cut by surgery
(:func:`~snp_edge.surgery.apply_widths`, issue 13's probe) and the masked model starting at the cut block
(:class:`~snp_edge.sensitivity.KLProbe`), on the same cuts (one block group each, at 1/2 of its width).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from snp_edge.allocation import allocate, structure
from snp_edge.api import DEFAULT_GROUP_WEIGHT, budget_of, prune
from snp_edge.arch import arch_of
from snp_edge.calib import load_calibration
from snp_edge.criteria import DEFAULT_CRITERIA, ScoreOptions, compute_scores
from snp_edge.models import load_model
from snp_edge.sensitivity import PROBES, KLProbe

MAX_RATIO = 2.0  # issue 21's targets: prune (default) / prune (uniform), medians
MAX_SENSITIVITY_S = 15.0  # the sensitivity analysis alone, median seconds, on two quiet cores


def machine() -> dict:
    """CPU model, cores, torch threads and version."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def _progress(name: str, seconds: float, probe=None) -> None:
    """One line per measurement as it ends (a loaded machine may not reach the summary)."""
    real = getattr(getattr(probe, "kl", probe), "count", None)
    print(f"{name}: {seconds:.1f} s" + (f", {real} real probes" if real is not None else "")
          + f", load average {tuple(round(x, 2) for x in os.getloadavg())}", flush=True)


def _stats(times: list[float]) -> dict:
    return {"min_s": min(times), "median_s": statistics.median(times), "max_s": max(times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="deit_small_patch16_224")
    p.add_argument("--target-gmacs", type=float, default=1.3)
    p.add_argument("--calib-images", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--probes", type=int, default=0, help="time this many single probes, surgery vs masked")
    p.add_argument("--group-weight", choices=["auto", *PROBES, "macs"], default=DEFAULT_GROUP_WEIGHT,
                   help="group weight of the default arm")
    p.add_argument("--group-weights", nargs="+", choices=list(PROBES), default=[DEFAULT_GROUP_WEIGHT],
                   help="whose sensitivity analysis to time alone")
    args = p.parse_args()
    handle = load_model(args.model, "random")
    cal = load_calibration(None, args.calib_images, handle.data_config)
    if args.probes:
        return probe_times(handle, cal.images, args.probes)
    common = dict(target_gmacs=args.target_gmacs, calib_images=args.calib_images)
    arms = {"default": {"group_weight": args.group_weight}, "uniform": {"allocation": "uniform"}}
    sens = {gw: f"sensitivity {gw}" for gw in args.group_weights}
    times: dict[str, list[float]] = {name: [] for name in (*arms, *sens.values())}
    load = [os.getloadavg()]
    scores = compute_scores(handle.model.eval(), cal.images, ScoreOptions(criteria=dict(DEFAULT_CRITERIA)))
    shell = structure(arch_of(handle.model), scores)
    budget = budget_of(handle, target_gmacs=args.target_gmacs)
    recipe = None
    for _ in range(args.repeats):  # the sensitivity alone first, then uniform, then the default: each printed
        for gw, name in sens.items():
            start = time.perf_counter()
            probe = PROBES[gw](handle, scores, cal.images)
            allocate("score", shell, budget.limit, budget.cost, 1, scores, probe, sublayers=True)
            probe.close()
            times[name].append(time.perf_counter() - start)
            _progress(name, times[name][-1], probe)
        for name, extra in reversed(arms.items()):
            start = time.perf_counter()
            result = prune(handle, **common, **extra)
            times[name].append(time.perf_counter() - start)
            recipe = recipe or (result.recipe["target"] if name == "default" else None)
            _progress(name, times[name][-1])
        load.append(os.getloadavg())
    ratio = statistics.median(times["default"]) / statistics.median(times["uniform"])
    for name, ts in times.items():
        print(f"{name}: min {min(ts):.1f} s, median {statistics.median(ts):.1f} s, max {max(ts):.1f} s")
    print(f"machine: {machine()}")
    print(f"default / uniform (medians): {ratio:.2f}x; load average (1, 5, 15 min) before and after each repeat: "
          f"{[tuple(round(x, 2) for x in avg) for avg in load]}")
    verdicts = {"ratio": ratio <= MAX_RATIO,
                **{name: statistics.median(times[name]) < MAX_SENSITIVITY_S for name in sens.values()}}
    print(f"target prune ratio <= {MAX_RATIO}x: {'met' if verdicts['ratio'] else 'NOT met'} ({ratio:.2f}x)")
    for name in sens.values():
        print(f"target {name} < {MAX_SENSITIVITY_S:.0f} s (two quiet cores): "
              f"{'met' if verdicts[name] else 'NOT met'} (median {statistics.median(times[name]):.1f} s)")
    print(json.dumps({"model": args.model, "target_gmacs": args.target_gmacs, "calib_images": args.calib_images,
                      "default": recipe, "machine": machine(),
                      "load": load, "ratio": ratio, "targets_met": verdicts,
                      "results": {k: _stats(v) for k, v in times.items()}}))


def probe_times(handle, images: torch.Tensor, n: int) -> None:
    """Seconds per probe, surgery-built model against masked model, on the same ``n`` cuts, interleaved."""
    from dataclasses import replace

    from snp_edge.criteria.residual import output_kl
    from snp_edge.surgery import apply_widths

    scores = compute_scores(handle.model.eval(), images[:8], ScoreOptions(criteria=dict.fromkeys(DEFAULT_CRITERIA, "l1")))
    shell = structure(arch_of(handle.model), scores)
    probe = KLProbe(handle, scores, images)
    probe.rebase(shell)
    comps = ("qk", "v", "mlp")
    cuts = []
    for k in range(n):
        pos, comp = k % len(shell.blocks), comps[k % 3]
        blocks = list(shell.blocks)
        blocks[pos] = replace(blocks[pos], **{comp: getattr(blocks[pos], comp) // 2})
        cuts.append(replace(shell, blocks=blocks))
    times: dict[str, list[float]] = {"surgery": [], "masked": []}
    load, diffs = [os.getloadavg()], []
    for arch in cuts:
        start = time.perf_counter()
        with torch.no_grad():
            a = output_kl(apply_widths(handle, arch, scores).model.eval(), probe.images, probe.reference,
                          probe.batch_size)
        times["surgery"].append(time.perf_counter() - start)
        start = time.perf_counter()
        b = probe(arch)
        times["masked"].append(time.perf_counter() - start)
        diffs.append(abs(a - b))  # float32 round-off (random weights: KL near 1e-6); equality: test_sensitivity
    load.append(os.getloadavg())
    for name, ts in times.items():
        print(f"{name}: per probe min {min(ts):.2f} s, median {statistics.median(ts):.2f} s, max {max(ts):.2f} s")
    ratio = statistics.median(times["surgery"]) / statistics.median(times["masked"])
    print(f"surgery / masked (medians): {ratio:.2f}x; largest |KL difference| {max(diffs):.2g}; load average "
          f"before, after: {load}")
    print(json.dumps({"model": handle.base_model, "probe_images": len(probe.images), "load": load, "ratio": ratio,
                      "torch_threads": torch.get_num_threads(), "results": {k: _stats(v) for k, v in times.items()}}))


if __name__ == "__main__":
    main()
