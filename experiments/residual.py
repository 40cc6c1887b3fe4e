"""The residual-width criterion (issue 16) on the trained models of the project's experiments.

    python -m experiments.residual --out runs/residual                 # full run (see docs/accuracy.md)
    python -m experiments.residual --out runs/residual --quick         # smoke run (about a minute)

Models (MNIST-5k, every seed its own independently trained base model, reused from ``--bases`` when there):

* ``wide``: the headline's DeiT-S-like ViT (width 96, 6 heads, 6 blocks; :mod:`experiments.headline`);
* ``small``: the criteria experiment's ViT (width 64, 2 heads, 4 blocks; :mod:`experiments.accuracy_retention`).

Sections:

1. ``embed``: only the residual width is pruned (75% and 62.5% of it kept), with every residual criterion;
   val top-1 before and after the experiment's distillation (1 epoch, soft KD from the unpruned model).
2. ``rescore``: the wide model pruned to 50% and 30% of its MACs with the default criterion and the
   score-driven allocation, the residual width chosen by ``l1`` or ``kl``, each with and without the
   query/key, value and FFN neurons re-scored after the residual cut (``rescore``); before and after the
   same distillation.

Rows are cached in ``OUT/rows.jsonl``; tables go to ``residual.md``, everything to ``results.json``, a plot to
``residual.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from snp_edge.engines.common.fileio import write_text_atomic as atomic_write_text

from snp_edge.errors import SnpEdgeError
from snp_edge.train.finetune import finetune

from . import accuracy_retention as small
from . import headline as wide
from .accuracy_retention import elapsed_log, experiment_data, machine
from .harness import RowCache, plan_key, stats

CRITERIA = ("random", "l1", "l2", "fisher", "ablation", "kl")
KEPT = (0.75, 0.625)
RESCORE = {"l1": ("l1", False), "l1+rescore": ("l1", True), "kl": ("kl", False), "kl+rescore": ("kl", True)}
TARGETS = {"50%": 0.5, "30%": 0.3}
MODELS = ("wide", "small")


@dataclass
class Plan:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    models: list[str] = field(default_factory=lambda: list(MODELS))
    quick: bool = False


def base_model(kind: str, data: Path, bases: Path, plan: Plan, seed: int, log):
    """The trained unpruned model of ``kind`` and ``seed`` (trained under ``bases`` unless already there)."""
    if kind == "wide":
        return wide.trained("wide", data, bases / "headline", wide.QUICK if plan.quick else wide.Plan(), seed, log)
    (bases / "accuracy").mkdir(parents=True, exist_ok=True)
    return small.train_base(data, bases / "accuracy" / f"base-s{seed}", small.QUICK if plan.quick else small.Plan(),
                            seed)


def kd_config(kind: str, plan: Plan, seed: int):
    """The experiment's own distillation: 1 epoch of soft KD from the unpruned model."""
    if kind == "wide":
        return wide.kd_config(wide.QUICK if plan.quick else wide.Plan(), seed, 1)
    return small.ft_config(small.QUICK if plan.quick else small.Plan(), seed)


def specs(kind: str) -> list[tuple[str, str, str]]:
    out = [("embed", f"{k:g}", c) for k in KEPT for c in CRITERIA]
    if kind == "wide":
        out += [("rescore", t, r) for t in TARGETS for r in RESCORE]
    return out


def prune_row(base, section: str, target: str, criterion: str, data: Path, calib_images: int, seed: int):
    from snp_edge.api import prune

    calib = dict(calib=data / "train", calib_images=calib_images, seed=seed)
    if section == "embed":
        cfg = {"embed": round(base.model.embed_dim * float(target))}
        if criterion in ("random", "l1", "l2"):
            return prune(base, config=cfg, criteria=criterion, **calib).handle
        return prune(base, config=cfg, criteria="snp", embed_score=criterion, **calib).handle
    embed_score, rescore = RESCORE[criterion]
    return prune(base, target_gmacs=base.gmacs * TARGETS[target], embed_score=embed_score, rescore=rescore,
                 **calib).handle


def measure(data: Path, out: Path, bases: Path, plan: Plan, sections: list[str], log) -> list[dict]:
    from snp_edge.train.data import eval_loader, eval_transform, load_split

    key = plan_key({"quick": plan.quick})
    done = RowCache(out / "rows.jsonl", ("model", "section", "seed", "target", "criterion"), key)
    rows = []
    (out / "kd").mkdir(parents=True, exist_ok=True)
    calib_images = 16 if plan.quick else 64
    for kind in plan.models:
        for seed in plan.seeds:
            base = base_model(kind, data, bases, plan, seed, log)
            val = eval_loader(load_split(data, "val", eval_transform(base.data_config), base.num_classes), 256)
            base_top1 = wide.evaluate_top1(base.model, val)
            for section, target, criterion in specs(kind):
                if section not in sections:
                    continue
                ident = (kind, section, seed, target, criterion)
                if ident in done:
                    rows.append(done[ident])
                    continue
                t = time.perf_counter()
                handle = prune_row(base, section, target, criterion, data, calib_images, seed)
                row = {"model": kind, "section": section, "seed": seed, "target": target, "criterion": criterion,
                       "base_top1": base_top1, "base_gmacs": base.gmacs, "gmacs": handle.gmacs,
                       "widths": wide.widths_of(handle), "top1_before": wide.evaluate_top1(handle.model, val),
                       "prune_s": time.perf_counter() - t, "plan_key": key}
                run = out / "kd" / "-".join(str(x) for x in ident)
                finetune(handle, data, run, kd_config(kind, plan, seed), teacher=base.model, force=True)
                row.update(top1_after=wide.evaluate_top1(handle.model, val), seconds=time.perf_counter() - t)
                rows.append(done.add(row))
                log(f"{kind} seed {seed} {section} {target} {criterion}: top-1 {row['top1_before']:.1f} -> "
                    f"{row['top1_after']:.1f} ({row['prune_s']:.1f} s to prune)")
    return rows


def _cell(values: list[float]) -> str:
    st = stats(values)
    return f"{st['mean']:.1f} ± {st['std']:.1f}"


def paired(rows: list[dict], a: str, b: str, metric: str, **where) -> dict:
    """Per-seed differences a - b (same base model, same target): mean, std, wins/ties/losses."""
    def pick(crit):
        return {r["seed"]: r[metric] for r in rows if r["criterion"] == crit and all(r[k] == v for k, v in where.items())}

    xa, xb = pick(a), pick(b)
    d = [xa[s] - xb[s] for s in sorted(set(xa) & set(xb))]
    if not d:
        return {}
    st = stats(d)
    return {**st, "wins": sum(x > 0 for x in d), "ties": sum(x == 0 for x in d), "losses": sum(x < 0 for x in d)}


def tables(rows: list[dict]) -> str:
    out = []
    for kind in MODELS:
        emb = [r for r in rows if r["model"] == kind and r["section"] == "embed"]
        if emb:
            E = round(emb[0]["widths"]["embed"] / float(emb[0]["target"]))
            seeds = sorted({r["seed"] for r in emb})
            unpruned = _cell([r["base_top1"] for r in {r["seed"]: r for r in emb}.values()])
            out += [f"### {kind} model: only the residual width pruned", "",
                    f"val top-1 (%) before / after 1 epoch of distillation, mean ± std over {len(seeds)} seeds "
                    f"(independently trained base models; unpruned: {unpruned}).",
                    "", "| residual width kept | " + " | ".join(CRITERIA) + " |", "|---|" + "---:|" * len(CRITERIA)]
            for kept in KEPT:
                for metric, label in (("top1_before", "before KD"), ("top1_after", "after KD")):
                    cells = [_cell([r[metric] for r in emb if r["target"] == f"{kept:g}" and r["criterion"] == c])
                             if any(r["target"] == f"{kept:g}" and r["criterion"] == c for r in emb) else ""
                             for c in CRITERIA]
                    out.append(f"| {round(E * kept)}/{E}, {label} | " + " | ".join(cells) + " |")
            out += ["", "Per-seed difference kl - l1 and kl - random (points; wins / ties / losses over seeds):", "",
                    "| residual width kept | metric | kl - l1 | kl - random |", "|---|---|---:|---:|"]
            for kept in KEPT:
                for metric in ("top1_before", "top1_after"):
                    cells = []
                    for other in ("l1", "random"):
                        d = paired(emb, "kl", other, metric, target=f"{kept:g}")
                        cells.append(f"{d['mean']:+.1f} ± {d['std']:.1f} ({d['wins']}/{d['ties']}/{d['losses']})" if d
                                     else "")
                    out.append(f"| {round(E * kept)}/{E} | {metric.replace('top1_', '')} | " + " | ".join(cells) + " |")
            out.append("")
    res = [r for r in rows if r["section"] == "rescore"]
    if res:
        seeds = sorted({r["seed"] for r in res})
        out += ["### wide model: whole model pruned (score allocation, default criterion), residual criterion and "
                "re-scoring", "", f"val top-1 (%), mean ± std over {len(seeds)} seeds; residual width kept in "
                "brackets.", "", "| MACs kept | residual | top-1 before KD | top-1 after KD | residual width |",
                "|---|---|---:|---:|---:|"]
        for target in TARGETS:
            for crit in RESCORE:
                sel = [r for r in res if r["target"] == target and r["criterion"] == crit]
                if sel:
                    out.append(f"| {target} | {crit} | {_cell([r['top1_before'] for r in sel])} | "
                               f"{_cell([r['top1_after'] for r in sel])} | "
                               f"{_cell([r['widths']['embed'] for r in sel])} |")
        out.append("")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in MODELS if any(r["model"] == k and r["section"] == "embed" for r in rows)]
    if not kinds:
        return
    fig, axes = plt.subplots(len(kinds), len(KEPT), figsize=(6 * len(KEPT), 3.8 * len(kinds)), squeeze=False)
    for i, kind in enumerate(kinds):
        for j, kept in enumerate(KEPT):
            ax = axes[i][j]
            sel = [r for r in rows if r["model"] == kind and r["section"] == "embed" and r["target"] == f"{kept:g}"]
            for off, metric, label in ((-0.2, "top1_before", "before KD"), (0.2, "top1_after", "after KD")):
                st = [stats([r[metric] for r in sel if r["criterion"] == c] or [0.0]) for c in CRITERIA]
                ax.bar([x + off for x in range(len(CRITERIA))], [s["mean"] for s in st], 0.4,
                       yerr=[s["std"] for s in st], capsize=2, label=label)
            ax.set_xticks(range(len(CRITERIA)), CRITERIA, fontsize=8)
            ax.set_ylim(40, 100)
            ax.set_title(f"{kind}: residual width {kept:.1%} kept", fontsize=9)
            ax.set_ylabel("val top-1 (%)")
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Residual-width criteria, MNIST-5k, independently trained base models (mean ± std)")
    fig.tight_layout()
    fig.savefig(out / "residual.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/residual", help="output folder (rows, tables, plot)")
    p.add_argument("--bases", default="runs", help="folder holding headline/ and accuracy/ with the trained bases")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (CI)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0-4)")
    p.add_argument("--models", nargs="+", choices=MODELS, help="which models (default both)")
    p.add_argument("--sections", nargs="+", choices=("embed", "rescore"), default=["embed", "rescore"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = Plan(quick=args.quick)
    if args.quick:
        plan.seeds, plan.models = [0], ["small"]
    plan.seeds = args.seeds or plan.seeds
    plan.models = args.models or plan.models
    out, bases = Path(args.out), Path(args.bases)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = elapsed_log(start)
    try:
        data = experiment_data(bases / "headline", wide.QUICK if args.quick else wide.Plan(), args.quick)
        rows = measure(data, out, bases, plan, args.sections, log)
    except SnpEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = tables(rows)
    atomic_write_text(out / "residual.md", text)
    plot(rows, out)
    atomic_write_text(out / "results.json", json.dumps({"plan": asdict(plan), "machine": machine(),
                                                        "load_end": os.getloadavg(), "rows": rows,
                                                        "wall_s": time.perf_counter() - start}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
