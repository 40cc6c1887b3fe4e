"""Iterative vs one-shot pruning at the same total epochs on MNIST-5k (the project's digit ViT): per seed, an
unpruned model trained from scratch, then pruned to 30% of its MACs (a) one-shot, then distilled for T epochs,
(b) in 3 geometric steps with 1 epoch of distillation after each of the first two and T-2 after the last
(:mod:`snp_edge.train.iterative`; ``steps=1`` is the one-shot arm). Both distil from the unpruned model.

    python -m experiments.iterative --out runs/iterative [--quick]

Writes OUT/rows.jsonl (resumable), OUT/results.json and OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from snp_edge.spec import PruneSpec
from snp_edge.train.iterative import Schedule, iterate, model_gmacs

from .accuracy_retention import MODEL, MODEL_ARGS, Plan, experiment_data, ft_config, machine, train_base
from .harness import RowCache, plan_key, stats


@dataclass
class IterPlan:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    base_epochs: int = 6  # the machine is shared (load ~11 on 2 cores): ~50 s an epoch
    fraction: float = 0.3
    total_epochs: int = 3
    steps: int = 3
    calib_images: int = 64


ARMS = {"one-shot": lambda p: Schedule(1, "geometric", 0, p.total_epochs),
        "iterative": lambda p: Schedule(p.steps, "geometric", 1, p.total_epochs - (p.steps - 1))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="+", help="measure these seeds only (parallel processes)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    plan = IterPlan(seeds=[0], base_epochs=2) if args.quick else IterPlan()
    todo = args.seeds or plan.seeds
    base_plan = Plan(seeds=plan.seeds, base_epochs=plan.base_epochs, **({"train_per_class": 16, "val_per_class": 10}
                                                                          if args.quick else {}))
    data = experiment_data(args.out, base_plan, args.quick)
    cache = RowCache(args.out / "rows.jsonl", ("seed", "arm"), plan_key(asdict(plan)))
    start = time.perf_counter()
    for seed in todo:
        base_dir = args.out / f"base-{seed}"
        base = train_base(data, base_dir, base_plan, seed)
        target = model_gmacs(base) * plan.fraction
        for arm, schedule in ARMS.items():
            if (seed, arm) in cache:
                continue
            t0 = time.perf_counter()
            spec = PruneSpec.of(MODEL, weights=str(base_dir / "last" / "model.safetensors"), model_args=MODEL_ARGS,
                                target_gmacs=target, calib=str(data / "train"), calib_images=plan.calib_images,
                                seed=seed)
            cfg = replace(ft_config(base_plan, seed), epochs=1)
            res = iterate(spec, data, args.out / f"{arm}-{seed}", cfg, schedule(plan), force=True, progress=False)
            last = res["steps"][-1]
            base_top1 = json.loads((base_dir / "log.jsonl").read_text().splitlines()[-1])["val_top1"]
            cache.add({"seed": seed, "arm": arm, "base_top1": base_top1, "gmacs": last["gmacs"],
                       "target_gmacs": target, "top1": last["val_top1"], "steps": [
                           {k: r.get(k) for k in ("budget_gmacs", "gmacs", "val_top1")} for r in res["steps"]],
                       "seconds": time.perf_counter() - t0})
            print(f"[{time.perf_counter() - start:5.0f} s] seed {seed} {arm}: {last['val_top1']:.2f}%", flush=True)
    if any((s, a) not in cache for s in plan.seeds for a in ARMS):
        return 0  # other seeds still running: rerun without --seeds to aggregate
    rows = [cache[(s, a)] for s in plan.seeds for a in ARMS]
    summary = {a: stats(r["top1"] for r in rows if r["arm"] == a) for a in ARMS}
    diffs = [cache[(s, "iterative")]["top1"] - cache[(s, "one-shot")]["top1"] for s in plan.seeds]
    result = {"plan": asdict(plan), "model": MODEL, "model_args": MODEL_ARGS, "machine": machine(),
              "summary": summary, "paired_diff_iterative_minus_oneshot": stats(diffs), "rows": rows}
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    base = stats(r["base_top1"] for r in rows if r["arm"] == "one-shot")
    lines = [f"Unpruned val top-1 {base['mean']:.2f} ± {base['std']:.2f}% ({base['n']} seeds, {plan.base_epochs} "
             f"epochs). Pruned to {plan.fraction:.0%} of the MACs, {plan.total_epochs} distillation epochs in all.", "",
             "| arm | schedule | val top-1 (%) | per seed |", "|---|---|---|---|"]
    for a in ARMS:
        s, sch = summary[a], ARMS[a](plan)
        per = ", ".join(f"{r['top1']:.1f}" for r in rows if r["arm"] == a)
        lines.append(f"| {a} | {sch.steps} step(s), {sch.epochs_per_step}/step + {sch.final_epochs} final | "
                     f"{s['mean']:.2f} ± {s['std']:.2f} | {per} |")
    d = result["paired_diff_iterative_minus_oneshot"]
    lines += ["", f"Paired difference iterative - one-shot: {d['mean']:+.2f} ± {d['std']:.2f} points "
                  f"(min {d['min']:+.2f}, max {d['max']:+.2f}, n={d['n']})."]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
