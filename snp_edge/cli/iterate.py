"""``snp-edge prune-iterative``: prune to intermediate MAC budgets, distil from the unpruned model after each,
re-score and re-allocate on the distilled model, down to --target-gmacs, then distil for --epochs
(:mod:`snp_edge.train.iterative`). OUT/step-K/ holds each step's model; a rerun with the same options resumes
after the last finished step. ``--steps 1`` is one-shot pruning followed by --epochs of distillation.
"""

from __future__ import annotations

import argparse
import json

from ..engines.common.argtypes import float_range, int_range
from . import args as groups
from .train import add_finetune_args, config_from_args

DEFAULT_STEPS = 3
DEFAULT_EPOCHS_PER_STEP = 2
SPACINGS = ("geometric", "linear")  # snp_edge.train.iterative.SPACINGS (no torch here)


def add_iterate_args(p: argparse.ArgumentParser) -> None:
    add_finetune_args(p)  # MODEL, --data, the schedule/augmentation/distillation/runtime groups, --seed, --out
    for action in p._actions:
        if action.dest == "model":
            action.help = "timm model name of the unpruned model (with --weights); also the distillation teacher"
        elif action.dest == "epochs":
            action.help = "distillation epochs after the last step (the final distillation)"
        elif action.dest == "teacher":
            action.help = "original only: every step distils from the unpruned model"
        elif action.dest == "resume":
            action.help = "accepted for symmetry with finetune: a rerun with the same options always resumes"
    g = p.add_argument_group("iterative schedule")
    g.add_argument("--target-gmacs", type=float_range(0.0, 1e6, lo_open=True), required=True, metavar="X",
                   help="final budget: the last step's widths reach X GMACs (within 2%%, never above)")
    g.add_argument("--steps", type=int_range(1, 100), default=DEFAULT_STEPS,
                   help="prune-distil rounds from the unpruned MACs to --target-gmacs (1: one-shot)")
    g.add_argument("--spacing", choices=SPACINGS, default="geometric",
                   help="budgets of the steps: geometric (same fraction removed each step) or linear (same GMACs)")
    g.add_argument("--epochs-per-step", type=int_range(0, 100_000), default=DEFAULT_EPOCHS_PER_STEP,
                   help="distillation epochs after each step but the last (0: re-score without training)")
    g = p.add_argument_group("calibration and structure (each step's pruning)")
    g.add_argument("--calib", metavar="SRC", help="calibration images: image folder or .npy (default: seeded noise)")
    g.add_argument("--calib-images", type=int_range(1, groups.MAX_IMAGES), default=64, metavar="N",
                   help="calibration images used")
    g.add_argument("--calib-batch-size", type=int_range(1, 4096), default=16, metavar="B",
                   help="calibration images per forward pass")
    g.add_argument("--heads", type=int_range(1), metavar="H", help="keep H heads per block (head pruning)")
    g.add_argument("--drop-blocks", type=int_range(0), default=0, metavar="K",
                   help="blocks removed by the first step (later steps keep the blocks)")
    g.add_argument("--round-to", type=int_range(1, 4096), metavar="N",
                   help="round every pruned width to a multiple of N (default 1: exact widths)")
    groups.advanced(p)


def cmd_iterate(args: argparse.Namespace) -> int:
    from ..errors import SnpEdgeError
    from ..train.iterative import Schedule, iterate

    if args.teacher not in (None, "original"):
        raise SnpEdgeError("prune-iterative distils from the unpruned model (--teacher original); "
                           f"got --teacher {args.teacher}")
    if args.resume not in (None, "auto"):
        raise SnpEdgeError("prune-iterative resumes by itself from --out (rerun with the same options); "
                           "--resume takes no checkpoint path")
    ns = argparse.Namespace(**vars(args))
    ns.batch_size = args.calib_batch_size
    spec = groups.prune_spec(ns)
    cfg = config_from_args(args, args.distill or "soft")
    schedule = Schedule(args.steps, args.spacing, args.epochs_per_step, args.epochs)
    result = iterate(spec, args.data, args.out, cfg, schedule, force=args.force, progress=not args.json)
    if args.json:
        print(json.dumps(result))
    else:
        last = result["steps"][-1]
        top1 = f", val top-1 {last['val_top1']:.2f}%" if "val_top1" in last else ""
        print(f"{len(result['steps'])} steps, {result['total_epochs']} epochs: {last['gmacs']:.4g} GMACs{top1}; "
              f"model in {result['out']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("prune-iterative", help="prune in steps, distilling from the unpruned model after each",
                       formatter_class=groups.formatter, description=__doc__)
    add_iterate_args(p)
    p.set_defaults(func=cmd_iterate)
