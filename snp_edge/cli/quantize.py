"""``snp-edge quantize``: INT8 post-training quantisation of a pruned folder, timm model or ONNX file for a
device target, gated against the FP32 model on the calibration images (export/quantize.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..engines.common.argtypes import int_range
from . import args as groups


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
    from ..engines.common.fileio import Output, scratch_dir
    from ..engines.common.targets import check_precision
    from ..export.quantize import quantize_for_target
    from ..sources import source_kind

    check_precision(args.target, "int8")  # before anything loads: jetson-nano refuses
    output = Output(args.out, args.force, kind="file")
    notice, meaningful = None, True
    with output, scratch_dir(output.path) as scratch:
        if source_kind(args.src) == "onnx":
            fp32 = Path(args.src)
            calib = calibration_images(args, onnx_data_config(fp32))
        else:
            from ..export.onnx_export import export_onnx
            from ..sources import load_handle
            from ..vit import parse_model_args

            handle = load_handle(args.src, args.weights, parse_model_args(args.model_arg))
            notice, meaningful = handle.notice, handle.accuracy_meaningful
            calib = calibration_images(args, handle.data_config)
            import torch

            fp32 = Path(scratch) / "fp32.onnx"
            export_onnx(handle, fp32, target=args.target, images=torch.from_numpy(calib))
        opts = groups.int8_options(args, meaningful)
        result = quantize_for_target(fp32, output.stage(), calib, args.target, opts.quantizer, opts.method,
                                     opts.thresholds, gate=opts.gate)
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
        print("accuracy gate skipped", file=text)
    print(f"wrote {args.out} for {args.target}: {result.quantizer} ({result.method} calibration on "
          f"{result.calib_images} images, {result.qdq_nodes} QuantizeLinear nodes, {result.seconds:.1f} s)", file=text)
    if notice:
        print(f"NOTICE: {notice}", file=text)
    if args.json:
        print(json.dumps(report))
    return 0


def export_int8(args: argparse.Namespace, handle, images, form) -> int:
    """``snp-edge export --precision int8``: the verified FP32 export (to a scratch file), then the target's
    INT8 model at --out, calibrated and gated on the --calib images (seeded noise without them)."""
    import torch

    from ..engines.common.fileio import Output, scratch_dir
    from ..export.onnx_export import export_onnx
    from ..export.quantize import quantize_for_target

    output = Output(args.out, args.force, kind="file")
    if images is None:
        images = torch.from_numpy(calibration_images(args, handle.data_config))
    opts = groups.int8_options(args, handle.accuracy_meaningful)
    with output, scratch_dir(output.path) as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        result = export_onnx(handle, fp32, opset=args.opset, target=args.target, fp16_safe=args.fp16_safe,
                             verify=not args.no_verify, images=images, input_form=form)
        onnx_images = result.input_form.encode(images, handle.data_config["mean"], handle.data_config["std"])
        q = quantize_for_target(fp32, output.stage(), onnx_images, args.target, opts.quantizer, opts.method,
                                opts.thresholds, gate=opts.gate)
        output.publish()
    text = sys.stderr if args.json else sys.stdout
    print(f"wrote {args.out} (INT8 for {args.target}: {q.quantizer}, {q.method} calibration on {q.calib_images} "
          f"images, {q.qdq_nodes} QuantizeLinear nodes; gate {'passed' if q.gate else 'skipped'})", file=text)
    if args.json:
        print(json.dumps({**q.to_dict(), "path": str(args.out), "target": args.target, "model": handle.name}))
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
    groups.precision(p, choice=False)
    groups.seed(p)
    groups.output(p, "output QDQ .onnx file")
    p.set_defaults(func=cmd_quantize)
