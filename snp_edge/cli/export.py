"""``snp-edge export`` (verified ONNX) and ``snp-edge bundle`` (a self-contained device bundle)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..engines.common.argtypes import int_range
from ..export.flavors import FLAVORS
from . import args as groups

PARSERS = ("trt8.2", "trt8.5", "trt10")  # export/trt_ops.py PARSERS (not imported: it imports onnx)
OPSETS = (13, 14, 15, 16, 17)


def _source(p: argparse.ArgumentParser, calib_images: int) -> None:
    p.add_argument("src", nargs="?", metavar="SRC", help="pruned model folder, or a timm model name")
    p.add_argument("--model", help="timm model name (instead of SRC), e.g. deit_small_patch16_224")
    groups.model(p)
    g = p.add_argument_group("export")
    g.add_argument("--calib", metavar="SRC",
                   help="images for the parity check and golden data (folder or .npy); none: seeded noise")
    g.add_argument("--calib-images", type=int_range(1, groups.MAX_IMAGES), default=calib_images, metavar="N",
                   help="images used")
    g.add_argument("--opset", type=int, choices=OPSETS,
                   help="ONNX opset (default: the target's; 13 without one): 13 for TensorRT 8.2, 17 keeps "
                        "LayerNormalization (TensorRT >= 8.6)")
    g.add_argument("--fp16-safe", action="store_true",
                   help="FP16 engine builds pin LayerNorm and softmax layers to FP32 (bundle manifest); export "
                        "also writes their node names into the ONNX metadata")
    g = p.add_argument_group("input form")
    g.add_argument("--normalize-in-graph", action="store_true",
                   help="fold the model's mean/std into the patch-embedding convolution: the ONNX takes RGB pixels "
                        "(NCHW float32) instead of normalised tensors; no node is added, parity is checked as usual")
    g.add_argument("--input-scale", type=int, choices=(1, 255), default=1,
                   help="with --normalize-in-graph: pixels in [0, 1] (1) or 0..255 (255)")


def input_form(args: argparse.Namespace):
    """The InputForm the flags ask for (None: the model's own normalised input)."""
    from ..errors import SnpEdgeError
    from ..export.normalize import InputForm

    if not args.normalize_in_graph:
        if args.input_scale != 1:
            raise SnpEdgeError("--input-scale applies to --normalize-in-graph only")
        return None
    return InputForm.raw(args.input_scale)


def reference_photos(args: argparse.Namespace) -> list:
    """(name, HxWx3 uint8 RGB) of the --calib images when it is a folder (the same seeded sample), else []."""
    import random

    import numpy as np

    from ..calib import list_images, read_rgb

    if not args.calib or not Path(args.calib).is_dir():
        return []
    files = list_images(Path(args.calib))
    if len(files) > args.calib_images:
        files = sorted(random.Random(args.seed).sample(files, args.calib_images))
    photos = []
    for path in files:
        photos.append((path.name, np.asarray(read_rgb(path, "calibration image"))))
    return photos


def handle_and_images(args: argparse.Namespace):
    """The model SRC / --model names, and the calibration images (None: seeded noise)."""
    from ..calib import load_calibration
    from ..errors import SnpEdgeError
    from ..sources import load_handle
    from ..vit import parse_model_args

    if bool(args.src) == bool(args.model):
        raise SnpEdgeError("give either SRC (a pruned folder or timm name) or --model NAME")
    handle = load_handle(args.src or args.model, args.weights, parse_model_args(args.model_arg))
    images = None
    if args.calib:
        images = load_calibration(args.calib, args.calib_images, handle.data_config, args.seed).images
    return handle, images


def cmd_export(args: argparse.Namespace) -> int:
    from ..engines.common.fileio import Output

    Output(args.out, args.force, kind="file")  # refused before anything loads: exists, a folder, unwritable
    from ..export.onnx_export import export_onnx

    target, parser = args.target, args.parser
    if target in PARSERS:  # before 0.2, --target named the parser
        target, parser = None, parser or target
    if args.precision == "int8":
        from ..export.int8_bundle import check_int8

        check_int8(target, "int8")  # before the model loads: jetson-nano refuses, a target is needed
    handle, images = handle_and_images(args)
    form = input_form(args)
    if args.precision == "int8":
        from .quantize import export_int8

        return export_int8(args, handle, images, form)
    result = export_onnx(handle, Path(args.out), opset=args.opset, parser=parser, target=target,
                         fp16_safe=args.fp16_safe, verify=not args.no_verify, images=images, force=args.force,
                         input_form=form)
    report = {**result.to_dict(), "model": handle.name, "gmacs": round(handle.gmacs, 4), "params": handle.params}
    if handle.notice:
        report["notice"] = handle.notice
    text = sys.stderr if args.json else sys.stdout
    for p in result.parity:
        rel = "n/a" if p.max_rel is None else f"{p.max_rel:.2e}"
        print(f"parity batch {p.batch}: max abs {p.max_abs:.2e}  max rel {rel}  "
              f"top-1 agreement {p.top1_agreement:.1%}", file=text)
    print(f"wrote {result.path} (opset {result.opset}, checked for {result.parser}); input: "
          f"{result.input_form.describe()}", file=text)
    if handle.notice:
        print(f"NOTICE: {handle.notice}", file=text)
    if args.json:
        print(json.dumps(report))
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from ..export.bundle import bundle_output, make_bundle
    from ..export.flavors import check_flavors

    bundle_output(args.out, args.archive, args.force)  # refused before the model loads
    form = input_form(args)
    check_flavors(args.flavor, args.target)  # before any work
    from ..export.int8_bundle import check_int8

    check_int8(args.target, args.precision)  # before the model loads: jetson-nano refuses int8
    handle, images = handle_and_images(args)
    int8 = groups.int8_options(args, handle.accuracy_meaningful) if args.precision == "int8" else None
    path = make_bundle(handle, args.target, Path(args.out), opset=args.opset, images=images,
                       fp16_safe=args.fp16_safe, archive=args.archive, force=args.force, labels=args.labels,
                       input_form=form, flavors=args.flavor, photos=reference_photos(args),
                       precision=args.precision, int8=int8)
    report = {"bundle": str(path), "target": args.target, "model": handle.name, "precision": args.precision,
              "flavors": list(dict.fromkeys(args.flavor)), "input_form": (form.to_dict() if form else None)}
    if handle.notice:
        report["notice"] = handle.notice
    text = sys.stderr if args.json else sys.stdout
    print(f"wrote bundle {path} for {args.target}" + (f" with {', '.join(report['flavors'])}" if args.flavor else ""),
          file=text)
    if handle.notice:
        print(f"NOTICE: {handle.notice}", file=text)
    if args.json:
        print(json.dumps(report))
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="export a pruned folder or timm model to verified ONNX",
                       formatter_class=groups.formatter,
                       description="Export to ONNX that the target's TensorRT parses, verified against PyTorch "
                                   "with ONNX Runtime (exit 1 above 1e-4 max abs error).")
    _source(p, calib_images=8)
    groups.device_target(p)
    p.add_argument("--parser", choices=PARSERS,
                   help="TensorRT ONNX-parser rules to check (default: the target's; without one trt8.2 at "
                        "opset 13, else trt10)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime parity gate")
    groups.precision(p)
    groups.seed(p)
    groups.output(p, "output .onnx file")
    # --target took trt8.2 / trt10 before 0.2: still accepted, hidden
    target = next(a for a in p._actions if a.dest == "target")
    target.choices = [*target.choices, *PARSERS]
    target.metavar = "TARGET"
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bundle", help="pack ONNX, golden data, device code and scripts for a device",
                       formatter_class=groups.formatter,
                       description="A self-contained device bundle: verified ONNX, golden inputs and outputs, the "
                                   "device code (engines/), scripts and device Dockerfiles, all hashed in "
                                   "manifest.json.")
    _source(p, calib_images=8)
    groups.device_target(p, required=True)
    groups.precision(p)
    groups.seed(p)
    groups.output(p, "output folder (or archive name with --archive)")
    p.add_argument("--archive", action="store_true", help="write OUT.tar.gz instead of a folder")
    p.add_argument("--labels", type=Path, metavar="FILE",
                   help="class labels, one per line, for labels.txt (default: timm's ImageNet names for ImageNet "
                        "models, else class_0, class_1, ...)")
    p.add_argument("--flavor", action="append", default=[], choices=list(FLAVORS), metavar="NAME",
                   help="also lay out the files another runtime wants, in the bundle folder NAME/; repeatable "
                        "(--flavor deepstream --flavor triton): " + "; ".join(
                            f"{f.name} ({', '.join(f.targets)}): {f.description}" for f in FLAVORS.values()))
    p.set_defaults(func=cmd_bundle)

