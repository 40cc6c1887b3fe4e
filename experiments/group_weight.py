"""Issue 21: which importance scale the score-driven allocator should use by default under ``--target-gmacs``.

    python -m experiments.group_weight --out runs/gw --base-seeds 0 --seeds 0 1 2 3 4 [--kd]

The headline experiment's wide MNIST ViT (``experiments.headline``: 6 blocks, width 96, 30 epochs; trained once
per base seed, reused from ``OUT/wide-s<seed>``) is pruned to 50% and 30% of its MACs by ``snp_edge.prune`` with
the default criteria, per calibration seed (which 64 calibration images; paired: every arm sees the same
images), with:

* ``loss``: measured group weights (``--group-weight loss``), the probe ladder 7/8, 3/4, 1/2, 1/4, smallest and
  the blocks probed again after the residual cut (issue 21);
* ``fisher``: ``--group-weight fisher`` (every rung estimated from one Fisher pass, put on the measured scale
  by a few real probes per component kind: ``snp_edge.sensitivity.FisherProbe``);
* ``fisher-8img``, ``fisher-4img``: ``fisher`` with every probe on 8 or 4 images (what DeiT-S gets: the
  images per probe fall with the model's MACs, :func:`snp_edge.sensitivity.probe_images`; these MNIST ViTs get 32);
* ``fisher-cal1``, ``fisher-half``: ``fisher`` calibrated on one block per component kind, or at 1/2 of the width
  only (fewer real probes);
* ``fisher-kind``: the same with every rung estimated (the smallest too: ``real_below=0``), so the only real
  probes are the calibration's;
* ``loss-coarse``: the same with the earlier ladder (1/2, 1/4, smallest) and no re-probe (issue 13's);
* ``macs``: ``--group-weight macs`` (scores normalised by their layer's mean, per MAC);
* ``uniform``: ``--allocation uniform``.

Top-1 on the 1,000 validation images before fine-tuning, and with ``--kd`` after one epoch of distillation
from the unpruned model (``experiments.headline.kd_config``). Rows are cached in ``OUT/group-weight.jsonl``;
``OUT/group-weight.md`` holds the table and the paired differences against ``loss`` and ``fisher``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
from snp_edge.engines.common.fileio import write_text_atomic as atomic_write_text

from .accuracy_retention import elapsed_log, experiment_data, machine
from .headline import TARGETS, Plan, evaluate_top1, kd_config, trained, widths_of

ARMS = {"loss": dict(group_weight="loss"), "fisher": dict(group_weight="fisher"),
        "fisher-kind": dict(group_weight="fisher"), "loss-coarse": dict(group_weight="loss"),
        "fisher-8img": dict(group_weight="fisher"), "fisher-4img": dict(group_weight="fisher"),
        "fisher-cal1": dict(group_weight="fisher"), "fisher-half": dict(group_weight="fisher"),
        "macs": dict(group_weight="macs"), "uniform": dict(allocation="uniform"),
        "loss-keep": dict(group_weight="loss", sublayers=False)}  # no sublayer cut to zero width (issue 21)
COARSE = (0.5, 0.25, 0.0)


@contextmanager
def coarse_probes():
    """The ``score`` allocator with issue 13's probe ladder and no re-probe, while inside."""
    from snp_edge import allocation

    fine = allocation.ALLOCATORS["score"]
    allocation.ALLOCATORS["score"] = partial(allocation.score_driven, kept=COARSE, reprobe=False)
    try:
        yield
    finally:
        allocation.ALLOCATORS["score"] = fine


@contextmanager
def kind_calibrated_only():
    """Group weight ``fisher`` with no real probe of a group's smallest width, while inside."""
    from snp_edge import sensitivity

    fisher = sensitivity.PROBES["fisher"]
    sensitivity.PROBES["fisher"] = partial(sensitivity.FisherProbe, real_below=0.0)
    try:
        yield
    finally:
        sensitivity.PROBES["fisher"] = fisher


@contextmanager
def sensitivity_settings(**values):
    """:mod:`snp_edge.sensitivity`'s module settings (``PROBE_IMAGES``, ``CAL_BLOCKS``, ...) set, while inside."""
    from snp_edge import sensitivity

    saved = {name: getattr(sensitivity, name) for name in values}
    for name, value in values.items():
        setattr(sensitivity, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(sensitivity, name, value)


VARIANTS = {"loss-coarse": coarse_probes, "fisher-kind": kind_calibrated_only,
            "fisher-8img": partial(sensitivity_settings, PROBE_IMAGES=(8, 8)),
            "fisher-4img": partial(sensitivity_settings, PROBE_IMAGES=(4, 4)),
            "fisher-cal1": partial(sensitivity_settings, CAL_BLOCKS=1),
            "fisher-half": partial(sensitivity_settings, CAL_KEPT=(0.5,))}


def prune_arm(arm: str, wide, goal_gmacs: float, data: Path, seed: int):
    from snp_edge.api import prune

    args = dict(target_gmacs=goal_gmacs, calib=data / "train", calib_images=64, seed=seed, **ARMS[arm])
    if arm in VARIANTS:
        with VARIANTS[arm]():
            return prune(wide, **args).handle
    return prune(wide, **args).handle


def table(rows: list[dict]) -> str:
    arms = [a for a in ARMS if any(r["arm"] == a for r in rows)]
    lines = ["| MACs kept | arm | MMACs | top-1 before KD (%) | top-1 after 1 epoch KD (%) | prune s (median) |",
             "|---|---|---:|---:|---:|---:|"]

    def ms(v):
        return f"{statistics.fmean(v):.1f} ± {statistics.stdev(v):.1f}" if len(v) > 1 else (f"{v[0]:.1f}" if v else "")

    for target in TARGETS:
        for arm in arms:
            sel = [r for r in rows if r["target"] == target and r["arm"] == arm]
            if not sel:
                continue
            after = [r["top1_after"] for r in sel if "top1_after" in r]
            lines.append(f"| {target} | {arm} | {statistics.fmean(r['gmacs'] for r in sel) * 1e3:.2f} | "
                         f"{ms([r['top1_before'] for r in sel])} | {ms(after) if len(after) == len(sel) else ''} | "
                         f"{statistics.median(r['seconds'] for r in sel):.1f} |")
    for ref_arm in REFS:
        if ref_arm in arms:
            lines += paired(rows, ref_arm, [a for a in arms if a != ref_arm])
    return "\n".join(lines) + "\n"


REFS = ("loss", "fisher")  # the arms the others are paired against


def paired(rows: list[dict], ref_arm: str, others: list[str]) -> list[str]:
    """Markdown lines: ``ref_arm`` - other, per target, mean ± standard error over the paired seeds."""
    lines = ["", f"Paired differences {ref_arm} - other (points, mean ± standard error over the seeds; per seed):",
             "", "| MACs kept | other | before KD | after KD |", "|---|---|---|---|"]
    for target in TARGETS:
        ref = {(r["base"], r["seed"]): r for r in rows if r["target"] == target and r["arm"] == ref_arm}
        for arm in others:
            cells = []
            for key in ("top1_before", "top1_after"):
                d = [ref[(r["base"], r["seed"])][key] - r[key] for r in rows if r["target"] == target
                     and r["arm"] == arm and (r["base"], r["seed"]) in ref and key in r and key in ref[(r["base"], r["seed"])]]
                se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else 0.0
                cells.append(f"{statistics.fmean(d):+.1f} ± {se:.1f} ({', '.join(f'{x:+.1f}' for x in d)})" if d else "")
            lines.append(f"| {target} | {arm} | {cells[0]} | {cells[1]} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/gw")
    p.add_argument("--base-seeds", type=int, nargs="+", default=[0], help="wide models (trained if absent)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="calibration seeds")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    p.add_argument("--kd", action="store_true", help="also one epoch of distillation per row")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from snp_edge.train.data import eval_loader, eval_transform, load_split
    from snp_edge.train.finetune import finetune

    plan, out = Plan(), Path(args.out)
    log = elapsed_log(time.perf_counter())
    data = experiment_data(out, plan, False)
    cache = out / "group-weight.jsonl"
    done = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            done[(r["base"], r["seed"], r["target"], r["arm"])] = r
    rows = []
    for base_seed in args.base_seeds:
        wide = trained("wide", data, out, plan, base_seed, log)
        val = eval_loader(load_split(data, "val", eval_transform(wide.data_config), wide.num_classes), 256)
        wide_top1 = evaluate_top1(wide.model, val)
        for seed in args.seeds:
            for target, frac in ((t, TARGETS[t]) for t in args.targets):
                for arm in args.arms:
                    key = (base_seed, seed, target, arm)
                    row = done.get(key)
                    if row is None or (args.kd and "top1_after" not in row):
                        t = time.perf_counter()
                        handle = prune_arm(arm, wide, wide.gmacs * frac, data, seed)
                        row = {"base": base_seed, "seed": seed, "target": target, "arm": arm, "wide_top1": wide_top1,
                               "gmacs": handle.gmacs, "widths": widths_of(handle), "seconds": time.perf_counter() - t,
                               "top1_before": evaluate_top1(handle.model, val), "load": os.getloadavg()}
                        if args.kd:
                            run = out / "kd-gw" / f"b{base_seed}-s{seed}-{target.rstrip('%')}-{arm}"
                            run.parent.mkdir(parents=True, exist_ok=True)
                            finetune(handle, data, run, kd_config(plan, seed, 1), teacher=wide.model, force=True)
                            row["top1_after"] = evaluate_top1(handle.model, val)
                        with open(cache, "a") as f:
                            f.write(json.dumps(row) + "\n")
                        log(f"base {base_seed} seed {seed} {target} {arm}: {row['gmacs'] * 1e3:.2f} MMACs, top-1 "
                            f"{row['top1_before']:.1f}" + (f" -> {row['top1_after']:.1f}" if "top1_after" in row else "")
                            + f" ({row['seconds']:.0f} s, load {row['load'][0]:.1f})")
                    rows.append(row)
    text = table(rows)
    atomic_write_text(out / "group-weight.md", text)
    atomic_write_text(out / "group-weight.json", json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
