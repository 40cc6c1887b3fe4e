"""FP32 against INT8 (ONNX Runtime's own Q/DQ placement, ``snp-edge quantize --target raspberry-pi-5``) on ONNX
Runtime's CPU provider: one thread, batch 1, interleaved, the INT8/FP32 latency ratio per model.

    python benchmarks/int8_speed.py --out docs/results/int8 [--runs 60] [--block 5] [--threads 1]

Models (random weights: speed does not depend on them): DeiT-S, SNP DeiT-S 1.3 (the paper's widths, and
``--round-to 8``), ``deit_s_1.3g_heads`` and DeiT-Tiny, 224 px. Each is exported (opset 17) and quantised
(``ort``, minmax calibration on 16 seeded noise images, no gate: random weights); the 2 x 5 sessions are then
timed in rounds: every round runs ``--block`` timed runs of each session in a freshly shuffled order, so
load drifts hit every model alike. Writes ``results.json`` and ``table.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from snp_edge.engines.common.ort import ort_session
from snp_edge.export.onnx_export import export_onnx
from snp_edge.export.quantize import quantize_onnx

from snp_edge import load_model, prune

MODELS = [("DeiT-S", "deit_small_patch16_224", None, None),
          ("SNP DeiT-S 1.3 (paper widths)", "deit_small_patch16_224", "deit_s_1.3g", None),
          ("SNP DeiT-S 1.3 --round-to 8", "deit_small_patch16_224", "deit_s_1.3g", 8),
          ("deit_s_1.3g_heads", "deit_small_patch16_224", "deit_s_1.3g_heads", None),
          ("DeiT-Tiny", "deit_tiny_patch16_224", None, None)]


def build(tmp: Path, log) -> list[dict]:
    calib = np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32)
    models = []
    for index, (label, name, preset, round_to) in enumerate(MODELS):
        base = load_model(name, "random")
        handle = prune(base, preset=preset, criteria="l1", round_to=round_to).handle if preset else base
        fp32 = tmp / f"model{index}.fp32.onnx"
        export_onnx(handle, fp32, opset=17, images=None)
        q = quantize_onnx(fp32, tmp / f"model{index}.int8.onnx", calib, "ort", "minmax", gate=False)
        models.append({"label": label, "gmacs": round(handle.gmacs, 3), "fp32": fp32, "int8": q.path,
                       "quantize_s": q.seconds, "qdq_nodes": q.qdq_nodes})
        log(f"{label}: {handle.gmacs:.3f} GMACs, quantised in {q.seconds:.1f} s ({q.qdq_nodes} Q nodes)")
    return models


def measure(models: list[dict], threads: int, runs: int, block: int, warmup: int, seed: int) -> dict:
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    sessions = {(m["label"], p): ort_session(str(m[p]), threads=threads) for m in models for p in ("fp32", "int8")}
    for s in sessions.values():
        for _ in range(warmup):
            s.run(None, {"input": x})
    times = {k: [] for k in sessions}
    rng = random.Random(seed)
    keys = list(sessions)
    for _ in range(-(-runs // block)):
        rng.shuffle(keys)
        for k in keys:
            s = sessions[k]
            for _ in range(block):
                t = time.perf_counter()
                s.run(None, {"input": x})
                times[k].append((time.perf_counter() - t) * 1e3)
    return times


def summary(models: list[dict], times: dict, block: int) -> list[dict]:
    rows = []
    for m in models:
        f, i = times[(m["label"], "fp32")], times[(m["label"], "int8")]
        stat = {p: {"min": min(v), "median": statistics.median(v), "max": max(v), "n": len(v)}
                for p, v in (("fp32", f), ("int8", i))}
        # per round: the INT8 block's median over the FP32 block's (both ran within seconds of each other)
        rounds = [statistics.median(i[k:k + block]) / statistics.median(f[k:k + block]) for k in range(0, len(f), block)]
        rows.append({"model": m["label"], "gmacs": m["gmacs"], **stat,
                     "ratio_median": stat["int8"]["median"] / stat["fp32"]["median"],
                     "ratio_paired": statistics.median(rounds), "ratio_paired_min": min(rounds),
                     "ratio_paired_max": max(rounds), "rounds": len(rounds),
                     "ratio_min": stat["int8"]["min"] / stat["fp32"]["min"],
                     "quantize_s": m["quantize_s"], "qdq_nodes": m["qdq_nodes"]})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | GMACs | FP32 ms (min / median / max) | INT8 ms (min / median / max) | INT8/FP32 per round "
             "(median, min-max) | INT8/FP32 (medians) | INT8/FP32 (mins) |", "|---|---:|---|---|---|---:|---:|"]
    for r in rows:
        f, i = r["fp32"], r["int8"]
        lines.append(f"| {r['model']} | {r['gmacs']} | {f['min']:.1f} / {f['median']:.1f} / {f['max']:.1f} | "
                     f"{i['min']:.1f} / {i['median']:.1f} / {i['max']:.1f} | {r['ratio_paired']:.2f} "
                     f"({r['ratio_paired_min']:.2f}-{r['ratio_paired_max']:.2f}, {r['rounds']} rounds) | "
                     f"{r['ratio_median']:.2f} | "
                     f"{r['ratio_min']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=60, help="timed runs per model and precision")
    p.add_argument("--block", type=int, default=5, help="timed runs per session per round")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:5.0f} s] {msg}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        models = build(Path(tmp), log)
        load_before = os.getloadavg()
        times = measure(models, args.threads, args.runs, args.block, args.warmup, args.seed)
        load_after = os.getloadavg()
    rows = summary(models, times, args.block)
    import onnxruntime

    doc = {"rows": rows, "threads": args.threads, "runs": args.runs, "block": args.block, "batch": 1,
           "onnxruntime": onnxruntime.__version__, "cpu": _cpu(), "cores": os.cpu_count(),
           "loadavg_before": load_before, "loadavg_after": load_after, "python": platform.python_version(),
           "raw_ms": {f"{k[0]} {k[1]}": v for k, v in times.items()}}
    (args.out / "results.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    text = table(rows)
    (args.out / "table.md").write_text(text + f"\nONNX Runtime {onnxruntime.__version__}, {args.threads} thread(s), "
                                       f"batch 1, {args.runs} timed runs each, {_cpu()}; load average "
                                       f"{load_before[0]:.2f} before, {load_after[0]:.2f} after.\n")
    print(text)
    log(f"load average before {load_before}, after {load_after}")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    raise SystemExit(main())
