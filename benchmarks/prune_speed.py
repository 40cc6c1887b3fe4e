"""How long SNP scoring + surgery takes: DeiT-B, 64 calibration images, this machine.

    python benchmarks/prune_speed.py [--model deit_base_patch16_224] [--preset deit_b_6.4g] [--repeats 3]

Times :func:`snp_edge.prune.prune_model` (calibration forward passes with the score hooks, the Q/K SVD
criterion, index selection, surgery and rebuilding the model), not model loading. Prints min/median/max
seconds and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from snp_edge.api import target_arch
from snp_edge.calib import load_calibration
from snp_edge.criteria import COMPONENTS, ScoreOptions
from snp_edge.models import load_model
from snp_edge.surgery import prune_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="deit_base_patch16_224")
    p.add_argument("--preset", action="append", help="default: deit_b_6.4g and deit_b_3.5g_heads")
    p.add_argument("--calib", help="image folder or .npy (default: seeded noise)")
    p.add_argument("--calib-images", type=int, default=64)
    p.add_argument("--criterion", default="snp")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    handle = load_model(args.model, "random")
    cal = load_calibration(args.calib, args.calib_images, handle.data_config)
    opts = ScoreOptions(dict.fromkeys(COMPONENTS, args.criterion))
    results = {}
    for preset in args.preset or ["deit_b_6.4g", "deit_b_3.5g_heads"]:
        arch = target_arch(handle, preset=preset)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            prune_model(handle, arch, cal, opts)
            times.append(time.perf_counter() - start)
        results[preset] = {"min_s": min(times), "median_s": statistics.median(times), "max_s": max(times)}
        print(f"{args.model} -> {preset}: scoring + surgery on {len(cal.images)} images: "
              f"min {min(times):.1f} s, median {statistics.median(times):.1f} s, max {max(times):.1f} s")
    print(json.dumps({"model": args.model, "criterion": args.criterion, "calib_images": len(cal.images),
                      "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                      "torch_threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
