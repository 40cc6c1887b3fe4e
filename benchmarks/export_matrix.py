"""Export every supported configuration at opset 13 and 17 and report parity and the TensorRT allow-list.

    python benchmarks/export_matrix.py [--out runs/export-matrix.md]

Models: DeiT-T, DeiT-S, DeiT-B (unpruned), DeiT-T/S/B pruned with every preset. Random weights (parity and
graph checks do not depend on them). Prints a Markdown table: opset, TensorRT target, ops, max abs / max
relative error and top-1 agreement at batch 1 and 8.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from snp_edge.export.onnx_export import export_onnx

from snp_edge import load_model, prune

CASES = [("deit_tiny_patch16_224", None), ("deit_small_patch16_224", None), ("deit_base_patch16_224", None),
         ("deit_tiny_patch16_224", "deit_t_0.6g"), ("deit_small_patch16_224", "deit_s_2.0g"),
         ("deit_small_patch16_224", "deit_s_1.3g"), ("deit_base_patch16_224", "deit_b_6.4g"),
         ("deit_base_patch16_224", "deit_b_3.5g_heads")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = p.parse_args()
    rows = ["| model | opset | TensorRT target | nodes | max abs (b1/b8) | max rel (b1/b8) | top-1 agree |",
            "|---|---:|---|---:|---|---|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, preset in CASES:
            base = load_model(name, "random")
            handle = prune(base, preset=preset, criteria="l1").handle if preset else base
            for opset in (13, 17):
                r = export_onnx(handle, Path(tmp) / f"{name}-{preset}-{opset}.onnx", opset=opset)
                b1, b8 = r.parity
                row = (f"| {name}{' + ' + preset if preset else ''} | {opset} | {r.target} | {sum(r.ops.values())} "
                       f"| {b1.max_abs:.1e} / {b8.max_abs:.1e} | {b1.max_rel:.1e} / {b8.max_rel:.1e} "
                       f"| {min(b1.top1_agreement, b8.top1_agreement):.0%} |")
                print(row, flush=True)
                rows.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
