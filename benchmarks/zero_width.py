"""Sublayers pruned to zero width (issue 21, docs/sublayers.md): the MNIST ViT pruned to a predicted ONNX Runtime
speed-up with zero widths (the default) and without (``--keep-sublayers``), paired over calibration seeds; then
the first seed's two models and the unpruned one timed side by side (ONNX Runtime, 1 thread, batch 1,
interleaved rounds: min / median / max).

    python benchmarks/zero_width.py --base runs/gw --seeds 0 1 2

``--base`` holds ``experiments.group_weight``'s data (``data/``) and wide model (``wide-s0/``; trained there by
``python -m experiments.group_weight --out runs/gw`` when absent). Rows: ``BASE/zero-width.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

TABLE = "docs/results/headline/latency-v3/latency-table.json"  # the MNIST ViT's ORT latency table
WIDE_ARGS = {"img_size": 28, "patch_size": 7, "embed_dim": 96, "depth": 6, "num_heads": 6, "num_classes": 10}


def timed(paths: dict[str, Path], rounds: int = 30, runs: int = 20) -> dict[str, list[float]]:
    """ms per run of each ONNX file, ``rounds`` interleaved rounds of ``runs`` runs (1 thread, batch 1)."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sessions = {n: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for n, p in paths.items()}
    x = {"input": np.random.default_rng(0).standard_normal((1, 3, 28, 28)).astype(np.float32)}
    for s in sessions.values():
        for _ in range(50):
            s.run(None, x)
    out: dict[str, list[float]] = {n: [] for n in sessions}
    for _ in range(rounds):
        for n, s in sessions.items():
            t = time.perf_counter()
            for _ in range(runs):
                s.run(None, x)
            out[n].append((time.perf_counter() - t) / runs * 1e3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="runs/gw")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--speedups", type=float, nargs="+", default=[2.0, 3.0])
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from snp_edge.engines import latency_table as lt
    from snp_edge.export.onnx_export import export_onnx

    from experiments.headline import evaluate_top1
    from snp_edge.api import prune
    from snp_edge.arch import Arch, arch_of
    from snp_edge.errors import SnpEdgeError
    from snp_edge.latency import predict_ms
    from snp_edge.models import load_model
    from snp_edge.summary import widths_of
    from snp_edge.train.data import eval_loader, eval_transform, load_split

    base = Path(args.base)
    table = lt.read_table(TABLE)
    wide = load_model("deit_small_patch16_224", str(base / "wide-s0" / "last" / "model.safetensors"), WIDE_ARGS)
    val = eval_loader(load_split(base / "data", "val", eval_transform(wide.data_config), wide.num_classes), 256)
    print(f"unpruned: top-1 {evaluate_top1(wide.model, val)}%, {predict_ms(table, arch_of(wide.model)):.4f} ms predicted")
    onnx = {"unpruned": export_onnx(wide, base / "zw-unpruned.onnx", force=True).path}
    with (base / "zero-width.jsonl").open("a") as rows:
        for seed in args.seeds:
            for speedup in args.speedups:
                for sub in (True, False):
                    row = {"seed": seed, "speedup": speedup, "sublayers": sub, "load": os.getloadavg()[0]}
                    try:
                        h = prune(wide, target_speedup=speedup, latency_table=TABLE, calib=base / "data" / "train",
                                  calib_images=64, seed=seed, sublayers=sub).handle
                    except SnpEdgeError as exc:
                        row["error"] = str(exc)
                    else:
                        w = widths_of(h)
                        row.update(top1=evaluate_top1(h.model, val), predicted_ms=predict_ms(table, Arch.from_dict(h.arch)),
                                   gmacs=h.gmacs, blocks_kept=w["blocks_kept"],
                                   widths=[[b[k] for k in ("heads", "qk", "v", "mlp")] for b in w["blocks"]])
                        if seed == args.seeds[0] and speedup == args.speedups[0]:
                            name = "zero" if sub else "keep"
                            onnx[name] = export_onnx(h, base / f"zw-{name}.onnx", force=True).path
                    print(json.dumps(row), flush=True)
                    rows.write(json.dumps(row) + "\n")
    load = os.getloadavg()[0]
    for name, ms in timed(onnx).items():
        print(f"{name}: {min(ms):.3f} / {statistics.median(ms):.3f} / {max(ms):.3f} ms (min / median / max), "
              f"load {load:.1f} -> {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
