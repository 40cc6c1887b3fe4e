"""``snp-edge export`` and ``snp-edge bundle``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from snp_edge.errors import SnpEdgeError


def _source_args(p: argparse.ArgumentParser) -> None:
    from snp_edge.cli import add_model_args

    p.add_argument("src", nargs="?", help="pruned model folder, or a timm model name")
    p.add_argument("--model", help="timm model name (instead of SRC), e.g. deit_small_patch16_224")
    add_model_args(p, weights_default="random")
    p.add_argument("--calib", help="images for parity/golden data (folder or .npy); default: seeded noise")
    p.add_argument("--calib-images", type=int, default=8, metavar="N", help="images used (default 8)")
    p.add_argument("--opset", type=int, help="ONNX opset: 13 (TensorRT 8.2, the default for export and "
                                            "jetson-nano) or 17 (LayerNormalization, TensorRT >= 8.6)")
    p.add_argument("--fp16-safe", action="store_true",
                   help="record LayerNorm/Softmax nodes so the engine build can pin them to FP32")
    p.add_argument("--force", action="store_true", help="replace the output if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON report as the last line of stdout")


def _handle_and_images(args: argparse.Namespace):
    from snp_edge.calib import load_calibration
    from snp_edge.models import parse_model_args, resolve_model

    if bool(args.src) == bool(args.model):
        raise SnpEdgeError("give either SRC (a pruned folder or timm name) or --model NAME")
    handle = resolve_model(args.src or args.model, args.weights, parse_model_args(args.model_arg))
    images = None
    if args.calib:
        images = load_calibration(args.calib, args.calib_images, handle.data_config).images
    return handle, images


def cmd_export(args: argparse.Namespace) -> int:
    from .onnx_export import export_onnx

    handle, images = _handle_and_images(args)
    result = export_onnx(handle, Path(args.out), opset=args.opset or 13, target=args.target,
                         fp16_safe=args.fp16_safe, verify=not args.no_verify, images=images, force=args.force)
    report = {**result.to_dict(), "model": handle.name, "gmacs": round(handle.gmacs, 4), "params": handle.params}
    if handle.notice:
        report["notice"] = handle.notice
    for p in result.parity:
        print(f"parity batch {p.batch}: max abs {p.max_abs:.2e}  max rel {p.max_rel:.2e}  "
              f"top-1 agreement {p.top1_agreement:.1%}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"wrote {result.path} (opset {result.opset}, checked for {result.target})")
        if handle.notice:
            print(f"NOTICE: {handle.notice}")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import make_bundle

    handle, images = _handle_and_images(args)
    path = make_bundle(handle, args.target, Path(args.out), opset=args.opset, images=images,
                       fp16_safe=args.fp16_safe, archive=args.archive, force=args.force)
    report = {"bundle": str(path), "target": args.target, "model": handle.name}
    if handle.notice:
        report["notice"] = handle.notice
    print(json.dumps(report) if args.json else f"wrote bundle {path} for {args.target}")
    return 0


def add_subparsers(sub) -> None:
    p = sub.add_parser("export", help="export a pruned folder or timm model to verified ONNX")
    _source_args(p)
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--target", choices=("trt8.2", "trt10"),
                   help="TensorRT whose parser the graph must satisfy (default: trt8.2 at opset 13, else trt10)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime parity gate")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bundle", help="pack ONNX, golden data, device code and scripts for a device")
    _source_args(p)
    p.add_argument("--target", required=True, choices=("jetson-nano", "rtx3090"), help="device")
    p.add_argument("--out", required=True, help="output folder (or archive name with --archive)")
    p.add_argument("--archive", action="store_true", help="write OUT.tar.gz instead of a folder")
    p.set_defaults(func=cmd_bundle)
