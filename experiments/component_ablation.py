"""Which component's criterion decides the accuracy before fine-tuning? Prune one component at a time.

    python -m experiments.component_ablation --out runs/accuracy   # after accuracy_retention (uses its base model)

For each target of :mod:`experiments.accuracy_retention`, only one component (qk, v, mlp or embed) is
narrowed to the target's width, the others stay whole, and every criterion chooses what to remove.
Writes ``ablation.md`` and ``ablation.json`` next to the experiment's results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from snp_edge.engines.common.fileio import write_text_atomic as atomic_write_text

from snp_edge.api import prune
from snp_edge.criteria import CRITERIA
from snp_edge.models import load_model
from snp_edge.train.data import eval_loader, eval_transform, load_split
from snp_edge.train.evaluate import evaluate, torch_predictor

from .accuracy_retention import MODEL, MODEL_ARGS, TARGETS, width_config

COMPONENTS = ("qk", "v", "mlp", "embed")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/accuracy", help="the accuracy_retention output folder")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    weights = out / "base-s0" / "last" / "model.safetensors"
    if not weights.is_file():
        print(f"error: {weights} not found; run experiments.accuracy_retention first", file=sys.stderr)
        return 1
    base = load_model(MODEL, str(weights), MODEL_ARGS)
    val = eval_loader(load_split(out / "data", "val", eval_transform(base.data_config), base.num_classes), 256)
    full = {"embed": base.model.embed_dim, "qk": base.model.blocks[0].attn.head_dim,
            "v": base.model.blocks[0].attn.head_dim, "mlp": base.model.blocks[0].mlp.fc1.out_features}
    rows = []
    for target, fraction in TARGETS.items():
        widths = width_config(base, fraction)
        for comp in COMPONENTS:
            config = {**full, comp: widths[comp]}
            for crit in CRITERIA:
                accs = []
                for seed in args.seeds if crit in ("random", "snp", "snp-data", "snp-attn") else args.seeds[:1]:
                    pruned = prune(base, config=config, calib=out / "data" / "train", calib_images=64, seed=seed,
                                   criteria=crit).handle
                    accs.append(evaluate(torch_predictor(pruned.model), val).top1)
                rows.append({"target": target, "component": comp, "width": widths[comp], "criterion": crit,
                             "top1": sum(accs) / len(accs), "seeds": len(accs)})
                print(f"{target} only {comp:5} -> {widths[comp]}: {crit:9} {rows[-1]['top1']:.2f}", flush=True)
    lines = ["| GMACs target | component pruned (width kept) | " + " | ".join(CRITERIA) + " |",
             "|---|---|" + "---|" * len(CRITERIA)]
    for target in TARGETS:
        for comp in COMPONENTS:
            sel = {r["criterion"]: r for r in rows if r["target"] == target and r["component"] == comp}
            width = sel[CRITERIA[0]]["width"]
            width = width[0] if isinstance(width, list) else width
            lines.append(f"| {target} | {comp} ({width}) | " + " | ".join(f"{sel[c]['top1']:.1f}" for c in CRITERIA)
                         + " |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "ablation.json", json.dumps(rows, indent=2) + "\n")
    atomic_write_text(out / "ablation.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
