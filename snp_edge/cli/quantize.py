"""``snp-edge quantize``: INT8 post-training quantisation of a pruned folder, timm model or ONNX file for a
device target, gated against the FP32 model on the calibration images (export/quantize.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..engines.argtypes import float_range, int_range
from . import args as groups

QUANTIZER_NAMES = ("ort", "modelopt")  # export.quantize.QUANTIZERS (checked in the tests; no onnx import here)
CALIBRATION_METHODS = ("entropy", "percentile", "minmax")  # export.quantize.CALIBRATION_METHODS (tests check)


def int8_options(p: argparse.ArgumentParser) -> None:
    """--quantizer, --calibration and the gate's thresholds: how an INT8 model is made (quantize, and
    export / bundle / run with --precision int8)."""
    g = p.add_argument_group("int8 quantisation (export/quantize.py)")
    g.add_argument("--quantizer", choices=QUANTIZER_NAMES,
                   help="Q/DQ placement: ort (ONNX Runtime int8 kernels, CPU targets) or modelopt (NVIDIA Model "
                        "Optimizer, TensorRT explicit quantisation); default: the target's")
    g.add_argument("--calibration", choices=CALIBRATION_METHODS,
                   help="activation ranges from the calibration images (default: the quantizer's, minmax: "
                        "measured best, docs/int8.md; percentile: ort only)")
    g.add_argument("--min-top1", type=float_range(0.0, 1.0), default=0.9, metavar="F",
                   help="gate: INT8 top-1 agreement with FP32 on the calibration images at least F")
    g.add_argument("--max-logit-error", type=float_range(0.0, 1e6, lo_open=True), default=0.25, metavar="F",
                   help="gate: max abs INT8 logit error at most F x the largest |FP32 logit|")
    g.add_argument("--no-gate", action="store_true", help="skip the accuracy gate (random-weight models)")


def thresholds(args: argparse.Namespace):
    from ..export.quantize import GateThresholds

    return GateThresholds(min_top1=args.min_top1, atol_frac=args.max_logit_error)


def calibration_images(args: argparse.Namespace, data_config: dict):
    """(N, C, H, W) float32 numpy calibration images (the --calib sample, or seeded noise with a notice)."""
    from ..calib import load_calibration

    calib = load_calibration(args.calib, args.calib_images, data_config, args.seed)
    if calib.notice:
        print(f"NOTICE: {calib.notice}; INT8 ranges calibrated on noise are not meaningful", file=sys.stderr)
    return calib.images.numpy()


def onnx_data_config(path: Path) -> dict:
    """timm's default eval preprocessing (ImageNet mean/std) at the ONNX input's size, for an ONNX SRC."""
    import onnx
    from timm.data import resolve_data_config

    model = onnx.load(str(path), load_external_data=False)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims[1:]):
        from ..errors import SnpEdgeError

        raise SnpEdgeError(f"{path}: input {model.graph.input[0].name} has shape {dims}; expected (N, C, H, W)")
    return resolve_data_config({"input_size": tuple(dims[1:])})


def cmd_quantize(args: argparse.Namespace) -> int:
    from ..engines.fileio import Output, scratch_dir
    from ..engines.targets import check_precision
    from ..export.quantize import quantize_for_target
    from ..sources import source_kind

    check_precision(args.target, "int8")  # before anything loads: jetson-nano refuses
    output = Output(args.out, args.force, kind="file")
    notice = None
    with output, scratch_dir(output.path) as scratch:
        if source_kind(args.src) == "onnx":
            fp32 = Path(args.src)
            calib = calibration_images(args, onnx_data_config(fp32))
        else:
            from ..export.onnx_export import export_onnx
            from ..sources import load_handle
            from ..vit import parse_model_args

            handle = load_handle(args.src, args.weights, parse_model_args(args.model_arg))
            notice = handle.notice
            calib = calibration_images(args, handle.data_config)
            import torch

            fp32 = Path(scratch) / "fp32.onnx"
            export_onnx(handle, fp32, target=args.target, images=torch.from_numpy(calib))
        result = quantize_for_target(fp32, output.stage(), calib, args.target, args.quantizer, args.calibration,
                                     thresholds(args), gate=not args.no_gate)
        output.publish()
    report = {**result.to_dict(), "path": str(args.out), "target": args.target, "source": args.src}
    if notice:
        report["notice"] = notice
    text = sys.stderr if args.json else sys.stdout
    g = result.gate
    if g:
        print(f"gate on {g['n']} calibration images: top-1 agreement {g['top1_agreement']:.1%} (>= "
              f"{g['thresholds']['min_top1']:.0%}), max abs logit error {g['max_abs_err']:.3g} (<= "
              f"{g['atol']:.3g} = {g['thresholds']['atol_frac']} x {g['logit_scale']:.3g})", file=text)
    else:
        print("gate skipped (--no-gate)", file=text)
    print(f"wrote {args.out} for {args.target}: {result.quantizer} ({result.method} calibration on "
          f"{result.calib_images} images, {result.qdq_nodes} QuantizeLinear nodes, {result.seconds:.1f} s)", file=text)
    if notice:
        print(f"NOTICE: {notice}", file=text)
    if args.json:
        print(json.dumps(report))
    return 0


def register(sub) -> None:
    p = sub.add_parser("quantize", help="INT8 post-training quantisation for a device target, accuracy-gated",
                       formatter_class=groups.formatter, description=__doc__)
    p.add_argument("src", metavar="SRC", help="pruned model folder, timm model name, or FP32 .onnx file")
    groups.model(p)
    g = p.add_argument_group("calibration")
    g.add_argument("--calib", metavar="SRC",
                   help="calibration images: folder or .npy (N,C,H,W preprocessed); none: seeded noise (notice)")
    g.add_argument("--calib-images", type=int_range(1, groups.MAX_IMAGES), default=64, metavar="N",
                   help="calibration images used (also the gate's images)")
    groups.device_target(p, required=True, purpose="device target: its Q/DQ placement and parser rules")
    int8_options(p)
    groups.seed(p)
    groups.output(p, "output QDQ .onnx file")
    p.set_defaults(func=cmd_quantize)
