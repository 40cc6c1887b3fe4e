"""Pruning to a measured latency (issue 13), checked side by side: ONNX Runtime, CPU, one thread, interleaved.

    python benchmarks/latency_targets.py --table deit_s_ort_1t.json --out docs/results/latency
    python benchmarks/latency_targets.py --out runs/latency            # profiles the table first (minutes)

1. The DeiT-S latency table (``snp-edge profile --backend ort --threads 1``; measured here when --table is
   not given) predicts every model below.
2. DeiT-S and DeiT-Tiny are measured (interleaved) for DeiT-Tiny's latency on this machine.
3. DeiT-S is pruned with ``--target-speedup 3.0`` and with ``--target-latency`` = DeiT-Tiny's measured latency
   (its median ratio to DeiT-S in the interleaved run of step 2, times DeiT-S's median when the table was
   measured: the load of a shared machine moves between runs, the ratio does not), with the score
   allocation and the table as the cost, once per ``--group-weights`` (default: the CLI's default, ``auto``:
   measured ``loss`` weights for a latency budget; ``macs`` as well for comparison); the presets are
   predicted by the table.
4. One interleaved benchmark of all of them (random weights: speed only) prints the ratios the issue asks for
   side by side: speed-up of the 3.0x model over DeiT-S (want 2.85-3.3), latency-target model / DeiT-Tiny
   (want within 5%), and predicted / measured for the presets and the pruned models (want within 10%),
   with min/median/max and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEIT_S, DEIT_T = "deit_small_patch16_224", "deit_tiny_patch16_224"
PRESETS = ("deit_s_2.0g", "deit_s_1.3g", "deit_s_1.3g_heads", "deit_s_tiny_ort")


def bench(cands, runs: int, seed: int) -> dict:
    from snp_edge.bench.run import BenchConfig, run_bench

    return run_bench(cands, BenchConfig(backend="ort", threads=1, warmup=max(20, runs // 10), runs=runs, seed=seed))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", type=Path, help="DeiT-S latency table (default: profile one now)")
    p.add_argument("--out", type=Path, required=True, help="folder for table.json (if profiled), results.json/.md")
    p.add_argument("--runs", type=int, default=300, help="timed runs per model in the final benchmark")
    p.add_argument("--criterion", default="l1", help="criterion (random weights: l1 needs no calibration pass)")
    p.add_argument("--speedup", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group-weights", nargs="+", default=["auto"], choices=["auto", "macs", "loss"],
                   help="--group-weight of the two pruned models; the first is checked against the issue's marks")
    args = p.parse_args()

    from snp_edge.bench.candidates import from_handle
    from snp_edge.bench.report import markdown
    from snp_edge.engines import latency_table as lt

    from snp_edge.api import prune
    from snp_edge.latency import predict_ms
    from snp_edge.models import load_model
    from snp_edge.presets import list_presets

    args.out.mkdir(parents=True, exist_ok=True)
    load = {"start": os.getloadavg()}
    t0 = time.perf_counter()
    table_path = args.table
    deit_s = load_model(DEIT_S, "random")
    if table_path is None:
        from snp_edge.bench.profile import profile_host

        def progress(done, total, term, widths, ms):
            if done % 50 == 0 or done == total:
                print(f"[{done}/{total}] profiling ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

        table_path = args.out / "table.json"
        table_path.write_text(json.dumps(profile_host(deit_s, "ort", 1, progress=progress), indent=1))
        load["after_profile"] = os.getloadavg()
    table = lt.read_table(table_path)
    deit_t = load_model(DEIT_T, "random")

    # DeiT-Tiny's latency here, measured against DeiT-S in one interleaved run
    ref = bench([from_handle(deit_s, DEIT_S, label="DeiT-S"), from_handle(deit_t, DEIT_T, label="DeiT-Tiny")],
                args.runs, args.seed)
    # the load of a shared machine moves between runs: DeiT-Tiny's latency is taken as its ratio to DeiT-S,
    # measured side by side, times DeiT-S's latency when the table was measured (its calibration run)
    ratio = ref["candidates"][1]["latency_ms"]["median"] / ref["candidates"][0]["latency_ms"]["median"]
    tiny_ms = ratio * table["calibration"]["measured_ms"]
    print(f"DeiT-Tiny / DeiT-S measured {ratio:.4f} -> DeiT-Tiny at the table's conditions {tiny_ms:.2f} ms",
          file=sys.stderr)

    common = {"criteria": args.criterion, "latency_table": table_path, "seed": args.seed}
    pruned, prune_s = [], {}
    for weight in args.group_weights:
        tag = "" if weight == args.group_weights[0] else f", --group-weight {weight}"
        for label, target in ((f"--target-speedup {args.speedup:g}{tag}", {"target_speedup": args.speedup}),
                              (f"--target-latency {tiny_ms:.2f} (DeiT-Tiny){tag}", {"target_latency": tiny_ms})):
            t = time.perf_counter()
            pruned.append((label, prune(deit_s, **target, group_weight=weight, **common)))
            prune_s[label] = time.perf_counter() - t
            print(f"pruned {label} in {prune_s[label]:.0f} s", file=sys.stderr, flush=True)
    from snp_edge.arch import Arch, arch_of

    def predicted(arch) -> dict:
        return {"predicted_ms": predict_ms(table, arch),
                "predicted_for": {k: table[k] for k in ("backend", "precision", "batch", "threads")}}

    cands = [from_handle(deit_s, DEIT_S, label="DeiT-S", extra=predicted(arch_of(deit_s.model)))]
    for label, result in pruned:
        cands.append(from_handle(result.handle, label, role="pruned", label=f"DeiT-S {label}",
                                 extra=predicted(Arch.from_dict(result.handle.arch))))
    for name in PRESETS:
        if name in list_presets():
            result = prune(deit_s, preset=name, criteria=args.criterion)
            cands.append(from_handle(result.handle, name, role="pruned", label=f"DeiT-S {name}",
                                     extra=predicted(Arch.from_dict(result.handle.arch))))
    # DeiT-Tiny's widths lie inside the DeiT-S table's grid (same tokens): the table predicts it too
    cands.append(from_handle(deit_t, DEIT_T, role="reference", label="DeiT-Tiny", extra=predicted(arch_of(deit_t.model))))
    load["before_bench"] = os.getloadavg()
    doc = bench(cands, args.runs, args.seed)
    load["end"] = os.getloadavg()
    rows = {c["label"]: c for c in doc["candidates"]}
    med = {k: c["latency_ms"]["median"] for k, c in rows.items()}
    s_label, l_label = cands[1].label, cands[2].label
    checks = {
        "speedup_vs_deit_s": med["DeiT-S"] / med[s_label],
        "speedup_target": args.speedup,
        "latency_target_over_deit_tiny": med[l_label] / med["DeiT-Tiny"],
        "deit_tiny_ms_used_as_target": tiny_ms,
        "deit_tiny_over_deit_s_reference_run": ratio,
        "predicted_over_measured": {k: c["predicted_ms"] / c["latency_ms"]["median"] for k, c in rows.items()
                                    if c.get("predicted_ms")},
    }
    lines = ["| model | GMACs | predicted ms | measured min / median / max ms | predicted / measured | speed-up vs DeiT-S |",
             "|---|---:|---:|---:|---:|---:|"]
    for k, c in rows.items():
        lat = c["latency_ms"]
        pm = c.get("predicted_ms")
        pred = "" if pm is None else f"{pm:.2f}"
        ratio = "" if pm is None else f"{pm / lat['median']:.3f}"
        lines.append(f"| {k} | {c['gmacs']:.3f} | {pred} | {lat['min']:.2f} / {lat['median']:.2f} / {lat['max']:.2f} "
                     f"| {ratio} | {med['DeiT-S'] / lat['median']:.2f}x |")
    summary = [
        f"--target-speedup {args.speedup:g}: measured {checks['speedup_vs_deit_s']:.2f}x faster than DeiT-S "
        f"(issue 13 wants 2.85-3.3x)",
        f"--target-latency {tiny_ms:.2f} ms (DeiT-Tiny's measured latency): measured "
        f"{checks['latency_target_over_deit_tiny']:.3f} x DeiT-Tiny's latency (wants within 5%)",
        "predicted / measured: " + ", ".join(f"{k} {v:.3f}" for k, v in checks["predicted_over_measured"].items()),
        f"load average (1/5/15 min): start {load['start']}, before the benchmark {load['before_bench']}, end "
        f"{load['end']}",
    ]
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summary) + "\n"
    print(text)
    (args.out / "results.json").write_text(json.dumps({"checks": checks, "load": load, "table": str(table_path),
                                                        "bench": doc, "reference_bench": ref,
                                                        "widths": {lab: r.summary["widths"] for lab, r in pruned},
                                                        "group_weights": {lab: r.recipe["target"]["group_weight"]
                                                                          for lab, r in pruned},
                                                        "prune_s": prune_s,
                                                        "wall_s": time.perf_counter() - t0}, indent=1))
    (args.out / "results.md").write_text(text + "\n" + markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
