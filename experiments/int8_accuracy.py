"""INT8 against FP32 accuracy on the project's trained MNIST ViTs, unpruned and SNP-pruned to 50% and 30% of
the MACs, with each quantiser (export/quantize.py), over seeds.

    python -m experiments.int8_accuracy --out runs/int8       # 3 seeds (about 30-40 min on 2 busy cores)
    python -m experiments.int8_accuracy --out runs/int8 --quick

Per seed: the small DeiT of :mod:`experiments.accuracy_retention` (28 px, patch 7, width 64, 4 blocks) is
trained from scratch on MNIST-5k (cached in ``OUT/base-sS``), pruned with SNP to the widths of 50% and 30%
of its GMACs and fine-tuned briefly with distillation; each model is exported to ONNX (opset 17), quantised
by every quantiser and calibration method on 64 training images, and all are evaluated by ONNX Runtime on
the 1,000 validation images. Rows go to ``OUT/rows.jsonl`` (a rerun continues), the summary to
``OUT/results.json`` and ``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from snp_edge.engines.common.ort import ort_session
from snp_edge.export.onnx_export import export_onnx
from snp_edge.export.quantize import accuracy_gate, eval_session, logits_of, quantize_onnx

from snp_edge.api import prune
from snp_edge.calib import load_calibration
from snp_edge.train.data import eval_loader, eval_transform, load_split
from snp_edge.train.finetune import finetune

from .accuracy_retention import COMBOS, QUICK, Plan, ft_config, parse_criterion, train_base, width_config
from .harness import stats
from .mnist5k import materialize

BUDGETS = {"100%": 1.0, "50%": 0.5, "30%": 0.3}
VARIANTS = [("ort", "minmax"), ("ort", "entropy"), ("ort", "percentile"), ("modelopt", "minmax"),
            ("modelopt", "entropy")]


def val_arrays(data: Path, handle) -> tuple[np.ndarray, np.ndarray]:
    ds = load_split(data, "val", eval_transform(handle.data_config), handle.num_classes)
    xs, ys = [], []
    for x, y in eval_loader(ds, 250):
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean() * 100)


def measure(out: Path, plan: Plan, variants: list[tuple[str, str]], log, base_weights: Path | None = None
            ) -> list[dict]:
    data = materialize(out / "data", val_per_class=plan.val_per_class, train_per_class=plan.train_per_class)
    cache = out / "rows.jsonl"
    done = {(r["seed"], r["budget"], r["quantizer"], r["method"]) for r in map(json.loads, cache.read_text().splitlines())
            } if cache.is_file() else set()
    rows = []
    (out / "finetune").mkdir(parents=True, exist_ok=True)
    for seed in plan.seeds:
        t = time.perf_counter()
        if base_weights:  # a base trained elsewhere: the headline experiment's wide model (experiments/headline.py)
            from snp_edge.models import load_model

            from .headline import WIDE

            base = load_model(WIDE[0], str(base_weights), WIDE[1])
        else:
            base = train_base(data, out / f"base-s{seed}", plan, seed)
        log(f"seed {seed}: base trained/loaded in {time.perf_counter() - t:.0f} s")
        x_val, y_val = val_arrays(data, base)
        calib = load_calibration(data / "train", plan.calib_images, base.data_config, seed).images
        for budget, fraction in BUDGETS.items():
            if all((seed, budget, q, m) in done for q, m in variants):
                continue
            handle = base
            if fraction < 1.0:
                result = prune(base, config=width_config(base, fraction), calib=data / "train",
                               calib_images=plan.calib_images, seed=seed, criteria=parse_criterion(COMBOS[0]))
                handle = result.handle
                finetune(handle, data, out / "finetune" / f"s{seed}-{budget.rstrip('%')}", ft_config(plan, seed),
                         teacher=base.model, force=True)
            onnx_dir = out / "onnx" / f"s{seed}-{budget.rstrip('%')}"
            onnx_dir.mkdir(parents=True, exist_ok=True)
            fp32_path = onnx_dir / "fp32.onnx"
            export_onnx(handle, fp32_path, opset=17, images=calib[:8], force=True)
            fp32_val = logits_of(ort_session(str(fp32_path)), x_val, 250)
            fp32_cal = logits_of(ort_session(str(fp32_path)), calib.numpy())
            for quantizer, method in variants:
                if (seed, budget, quantizer, method) in done:
                    continue
                path = onnx_dir / f"{quantizer}-{method}.onnx"
                path.unlink(missing_ok=True)
                q = quantize_onnx(fp32_path, path, calib.numpy(), quantizer, method, gate=False)
                session = eval_session(path)
                int8_val = logits_of(session, x_val, 250)
                gate = accuracy_gate(fp32_cal, logits_of(session, calib.numpy()))
                agree = float((int8_val.argmax(1) == fp32_val.argmax(1)).mean())
                row = {"seed": seed, "budget": budget, "gmacs": handle.gmacs, "quantizer": quantizer,
                       "method": method, "fp32_top1": top1(fp32_val, y_val), "int8_top1": top1(int8_val, y_val),
                       "val_top1_agreement": agree, "calib_top1_agreement": gate["top1_agreement"],
                       "calib_max_abs_frac": gate["max_abs_err"] / gate["logit_scale"],
                       "gate_passed": gate["passed"], "seconds": q.seconds, "qdq_nodes": q.qdq_nodes}
                row["loss"] = row["fp32_top1"] - row["int8_top1"]
                rows.append(row)
                with open(cache, "a") as f:
                    f.write(json.dumps(row) + "\n")
                log(f"seed {seed} {budget:>4} {quantizer:>8} {method:>10}: FP32 {row['fp32_top1']:.2f} INT8 "
                    f"{row['int8_top1']:.2f} (agree {agree:.3f}, calib max err {row['calib_max_abs_frac']:.3f})")
    return [json.loads(line) for line in cache.read_text().splitlines()]


def _mean_std(values: list[float]) -> str:
    s = stats(values)  # the harness's statistics (experiments/harness.py)
    return f"{s['mean']:.2f} ± {s['std']:.2f}"


def _passes(row: dict) -> bool:
    """The default gate (export.quantize.DEFAULT_GATE) on the row's calibration-image comparison."""
    from snp_edge.export.quantize import DEFAULT_GATE

    return (row["calib_top1_agreement"] >= DEFAULT_GATE.min_top1
            and row["calib_max_abs_frac"] <= DEFAULT_GATE.atol_frac)


def table(rows: list[dict]) -> str:
    lines = ["| budget | quantizer | calibration | FP32 top-1 (%) | INT8 top-1 (%) | loss (points) | val top-1 "
             "agreement | calib max err / scale (worst) | default gate passed | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for budget in BUDGETS:
        for quantizer, method in VARIANTS:
            sel = [r for r in rows if r["budget"] == budget and r["quantizer"] == quantizer and r["method"] == method]
            if not sel:
                continue
            lines.append(f"| {budget} | {quantizer} | {method} | {_mean_std([r['fp32_top1'] for r in sel])} | "
                         f"{_mean_std([r['int8_top1'] for r in sel])} | {_mean_std([r['loss'] for r in sel])} | "
                         f"{min(r['val_top1_agreement'] for r in sel):.3f} (min) | "
                         f"{max(r['calib_max_abs_frac'] for r in sel):.3f} | "
                         f"{sum(_passes(r) for r in sel)}/{len(sel)} | {len(sel)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, nargs="*")
    p.add_argument("--base-epochs", type=int, help="epochs of the from-scratch base training (default: the plan's)")
    p.add_argument("--variants", nargs="*", help="quantizer:method pairs (default: all)")
    p.add_argument("--base-weights", type=Path,
                   help="weights of experiments.headline's wide model (28 px MNIST DeiT, trained there) used as the "
                        "unpruned model of every seed instead of training one")
    p.add_argument("--ft-steps", type=int, help="fine-tuning steps per pruned model (default: one epoch)")
    args = p.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.seeds:
        plan = replace(plan, seeds=args.seeds)
    if args.base_epochs:
        plan = replace(plan, base_epochs=args.base_epochs)
    if args.ft_steps:
        plan = replace(plan, ft_steps=args.ft_steps)
    variants = [tuple(v.split(":")) for v in args.variants] if args.variants else VARIANTS
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {msg}", flush=True)

    rows = measure(args.out, plan, variants, log, args.base_weights)
    (args.out / "table.md").write_text(table(rows))
    (args.out / "results.json").write_text(json.dumps({"plan": plan.__dict__, "rows": rows,
                                                       "machine": platform.processor() or platform.machine()},
                                                      indent=1, default=str))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
