"""``snp-edge run``: the main job, prune -> export -> bundle -> bench, in one output folder.

Default: DeiT-Small with the paper's 1.3 GMACs preset, pretrained weights when they load (else random
weights, and every output says that accuracy is then meaningless), compared with the unpruned model
and DeiT-Tiny on ONNX Runtime::

    OUT/pruned/            model.safetensors + model.json
    OUT/onnx/*.onnx        the pruned model, the unpruned model and the reference models (verified)
    OUT/bundles/TARGET/    device bundles (jetson-nano: opset 13, rtx3090: opset 17)
    OUT/bench/             results.json, results.md, results.png
    OUT/summary.json       what was done, the numbers, and the notice
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

DEFAULT_MODEL = "deit_small_patch16_224"
DEFAULT_PRESET = "deit_s_1.3g"
DEFAULT_REFERENCES = ("deit_tiny_patch16_224",)
RUN_PROTOCOL = {"warmup": 50, "runs": 300}


def _stage(name: str) -> None:
    print(f"[snp-edge run] {name}", file=sys.stderr, flush=True)


def _onnx_candidate(handle, path: Path, role: str, label: str):
    from bench.candidates import Candidate

    return Candidate(label=label, source=str(path), kind="onnx", role=role, handle=handle, path=path,
                     gmacs=handle.gmacs, params=handle.params, accuracy_meaningful=handle.accuracy_meaningful,
                     notice=handle.notice, extra={"base_model": handle.base_model})


def cmd_run(args: argparse.Namespace) -> int:
    from bench.report import markdown, write_report
    from bench.run import QUICK, BenchConfig, run_bench
    from export.bundle import make_bundle
    from export.onnx_export import export_onnx

    from .calib import load_calibration
    from .cli import prune_from_args
    from .models import load_model, parse_model_args
    from .saved import check_output_dir, publish_dir, save_pruned

    if not (args.preset or args.config or args.target_gmacs):
        args.preset = DEFAULT_PRESET
    protocol = QUICK if args.quick else RUN_PROTOCOL
    cfg = BenchConfig(backend=args.backend, warmup=args.warmup if args.warmup is not None else protocol["warmup"],
                      runs=args.runs or protocol["runs"], threads=args.threads, batch=args.batch)
    if args.backend != "none":
        cfg.check()
    out = Path(args.out or Path("runs") / f"run-{time.strftime('%Y%m%d-%H%M%S')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    check_output_dir(out, args.force)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _stage(f"loading {args.model} (weights: {args.weights})")
        base = load_model(args.model, args.weights, parse_model_args(args.model_arg))
        if base.notice:
            print(f"NOTICE: {base.notice}", file=sys.stderr)
        _stage("pruning")
        result = prune_from_args(args, model=base)
        pruned = result.handle
        save_pruned(pruned, tmp / "pruned", extra={"summary": result.summary, "pruning": result.recipe})
        images = (load_calibration(args.calib, 8, base.data_config).images if args.calib else None)
        _stage("exporting ONNX (verified against PyTorch with ONNX Runtime)")
        (tmp / "onnx").mkdir()
        models = [(base, "unpruned", args.model), (pruned, "pruned", f"{args.model} + SNP")]
        for ref in args.references:
            if ref != args.model:
                models.append((load_model(ref, args.weights), "reference", ref))
        exports = []
        for handle, role, label in models:
            name = "pruned" if role == "pruned" else handle.base_model
            path = tmp / "onnx" / f"{name}.onnx"
            report = export_onnx(handle, path, images=images)
            exports.append((handle, role, label, path, report))
        bundles = {}
        if args.targets:
            (tmp / "bundles").mkdir()
        for target in args.targets:
            _stage(f"bundling for {target}")
            bundles[target] = str(make_bundle(pruned, target, tmp / "bundles" / target, images=images)
                                  .relative_to(tmp))
        bench_doc = None
        if args.backend != "none":
            _stage(f"benchmarking on {args.backend} (warm-up {cfg.warmup}, runs {cfg.runs}, interleaved)")
            cands = [_onnx_candidate(h, p, role, label) for h, role, label, p, _ in exports]
            bench_doc = run_bench(cands, cfg, command=sys.argv)
            write_report(bench_doc, tmp / "bench")
        summary = {
            "model": args.model, "weights": base.weights, "accuracy_meaningful": base.accuracy_meaningful,
            "notice": pruned.notice, "prune": result.summary, "pruning": result.recipe,
            "onnx": {label: {"file": str(p.relative_to(tmp)), "parity": [x.to_dict() for x in r.parity]}
                     for _, _, label, p, r in exports},
            "bundles": bundles,
            "bench": "bench/results.json" if bench_doc else None,
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        publish_dir(tmp, out, args.force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if bench_doc is not None:
        print(markdown(bench_doc))
    print(f"wrote {out}/ (pruned/, onnx/, {'bundles/, ' if bundles else ''}{'bench/, ' if bench_doc else ''}"
          "summary.json)")
    if pruned.notice:
        print(f"NOTICE: {pruned.notice}")
    if bench_doc is not None and bench_doc.get("partial"):
        return 130
    return 0


def add_subparsers(sub) -> None:
    from bench.backends import BACKENDS

    from .cli import add_model_args, add_prune_args

    p = sub.add_parser("run", help="the main job: prune -> export -> bundle -> bench (default DeiT-S, 1.3 GMACs)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"timm model (default {DEFAULT_MODEL})")
    add_model_args(p)
    add_prune_args(p, target_required=False)
    p.add_argument("--references", nargs="*", default=list(DEFAULT_REFERENCES), metavar="NAME",
                   help="unpruned reference models exported and benchmarked beside (default deit_tiny_patch16_224)")
    p.add_argument("--targets", nargs="*", default=["jetson-nano", "rtx3090"], metavar="TARGET",
                   help="device bundles to make (default jetson-nano rtx3090; none: give the flag alone)")
    p.add_argument("--backend", default="ort", choices=(*BACKENDS, "none"), help="bench backend (default ort)")
    p.add_argument("--batch", type=int, default=1, help="images per benchmark run (default 1)")
    p.add_argument("--warmup", type=int, help=f"untimed runs per model (default {RUN_PROTOCOL['warmup']})")
    p.add_argument("--runs", type=int, help=f"timed runs per model (default {RUN_PROTOCOL['runs']}; "
                                            "the paper: --warmup 200 --runs 1000)")
    p.add_argument("--threads", type=int, help="ONNX Runtime / torch threads (default: all cores)")
    p.add_argument("--quick", action="store_true", help="few benchmark runs (smoke test)")
    p.add_argument("--out", help="output folder (default runs/run-<time>)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_run)
