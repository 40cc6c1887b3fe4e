"""Where ONNX Runtime spends its time, per op type, for several ONNX files: explains kernel efficiency.

    python benchmarks/ort_profile.py ds.onnx snp13.onnx deit_t.onnx [--threads 1] [--runs 30]

For each model: total kernel time per run (ms), and the share of MatMul/Gemm (scales with GMACs) against
the ops whose cost does not shrink with the pruned widths (LayerNorm, Softmax over H x N x N scores, GELU,
residual adds, reshapes/transposes). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

MATMUL_OPS = ("MatMul", "Gemm", "FusedMatMul", "FusedGemm", "Conv")


def profile(path: Path, threads: int, runs: int) -> dict[str, float]:
    """Mean kernel time per run (ms) per op type."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "prof")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        shape = [1 if not isinstance(d, int) else d for d in session.get_inputs()[0].shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for _ in range(5):
            session.run(None, {"input": x})
        for _ in range(runs):
            session.run(None, {"input": x})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    return {op: us / (runs + 5) / 1000 for op, us in per_op.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", nargs="+", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args()
    print("| model | kernel ms/run | MatMul/Gemm/Conv ms | other ms | other share | top other ops (ms) |")
    print("|---|---:|---:|---:|---:|---|")
    for path in args.onnx:
        ops = profile(path, args.threads, args.runs)
        mm = sum(v for k, v in ops.items() if k in MATMUL_OPS)
        other = {k: v for k, v in ops.items() if k not in MATMUL_OPS}
        total = mm + sum(other.values())
        top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(other.items(), key=lambda kv: -kv[1])[:5])
        print(f"| {path.stem} | {total:.1f} | {mm:.1f} | {total - mm:.1f} | {(total - mm) / total:.0%} | {top} |")


if __name__ == "__main__":
    main()
