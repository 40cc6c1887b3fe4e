"""``snp-edge profile``: measure a latency table of a model's parts on this machine (or write the plan a device
measures with ``python3 -m engines profile``), for ``prune --target-latency`` / ``--target-speedup``."""

from __future__ import annotations

import argparse
import sys
import time

from . import args as groups

HOST_BACKENDS = ("ort", "torch")


def cmd_profile(args: argparse.Namespace) -> int:
    from ..engines import latency_table as lt
    from ..engines.common.fileio import Output, write_json_atomic
    from ..models import load_model
    from ..vit import parse_model_args

    with Output(args.out, args.force, kind="file") as out:
        handle = load_model(args.model, args.weights, parse_model_args(args.model_arg))
        from ..bench.profile import plan, profile_host

        if args.plan_only:
            doc = plan(handle, args.points, not args.model_heads_only, args.batch)
            write_json_atomic(out.stage(), doc)
            out.publish()
            n = len(doc["grid"]["embed"]) * len(doc["grid"]["heads"]) * len(doc["grid"]["qk"]) * len(doc["grid"]["v"])
            print(f"wrote {args.out}: plan for {args.model} ({n} attention and "
                  f"{len(doc['grid']['embed']) * len(doc['grid']['mlp'])} FFN points); on the device: "
                  f"python3 -m engines profile {args.out} --out table.json")
            return 0
        start = time.perf_counter()

        def progress(done: int, total: int, term: str, widths: dict, ms: float) -> None:
            if done == 1 or done == total or done % 25 == 0:
                print(f"[{done}/{total}, {time.perf_counter() - start:.0f} s] {term} "
                      f"{' '.join(f'{k}={v}' for k, v in widths.items())}: {ms:.3f} ms", file=sys.stderr, flush=True)

        table = profile_host(handle, args.backend, args.threads, args.batch, args.points, not args.model_heads_only,
                             args.warmup, args.runs, args.time_budget, progress, args.passes, args.precision)
        write_json_atomic(out.stage(), table)
        out.publish()
    state = "PARTIAL (the time budget ran out; prune refuses it)" if table["partial"] else "complete"
    print(f"wrote {args.out}: {state}; {lt.describe_calibration(table)}")
    return 1 if table["partial"] else 0


def register(sub) -> None:
    p = sub.add_parser("profile", help="measure a latency table (for prune --target-latency / --target-speedup)",
                       formatter_class=groups.formatter, description=__doc__)
    p.add_argument("--model", required=True, help="unpruned timm model name, e.g. deit_small_patch16_224")
    groups.model(p, weights_default="random")
    g = p.add_argument_group("measurement")
    g.add_argument("--backend", choices=HOST_BACKENDS, default="ort",
                   help="ort (ONNX Runtime, CPU) or torch (PyTorch eager, CPU); TensorRT: --plan-only, then "
                        "python3 -m engines profile on the device")
    g.add_argument("--precision", choices=groups.PRECISIONS, default="fp32",
                   help="int8 (ort only): every probe quantised as snp-edge quantize --target raspberry-pi-5 does, for "
                        "prune --target-latency on a CPU board running INT8")
    g.add_argument("--threads", type=groups.int_range(1, 1024), default=1, metavar="N",
                   help="ONNX Runtime intra-op / torch threads")
    g.add_argument("--batch", type=groups.int_range(1, 4096), default=1, metavar="N", help="images per run")
    g.add_argument("--points", type=groups.int_range(2, 64), default=5, metavar="P",
                   help="grid values per width axis (the FFN axis gets 2P)")
    g.add_argument("--model-heads-only", action="store_true",
                   help="measure only the model's head count (no --heads pruning with this table; a smaller grid)")
    g.add_argument("--warmup", type=groups.NONNEGATIVE_INT, default=5, metavar="N", help="untimed runs per point")
    g.add_argument("--runs", type=groups.int_range(1, 100000), default=20, metavar="N",
                   help="timed runs per point (the least is kept: robust to bursts of load)")
    g.add_argument("--passes", type=groups.int_range(1, 100), default=2, metavar="K",
                   help="measure the whole grid K times and keep each point's least time")
    g.add_argument("--time-budget", type=groups.POSITIVE_FLOAT, metavar="S",
                   help="stop after S seconds (the table is then marked partial and exit status is 1)")
    g.add_argument("--plan-only", action="store_true",
                   help="write the plan (geometry + grid) for python3 -m engines profile instead of measuring")
    groups.output(p, "latency table (or plan) JSON file", json_flag=False)
    p.set_defaults(func=cmd_profile)
