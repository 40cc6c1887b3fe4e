"""The ``snp-edge`` command line: one tool, one subcommand per pipeline stage.

Every failure caused by input is one line on stderr and exit status 1; no partial output is left.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .errors import SnpEdgeError

Handler = Callable[[argparse.Namespace], int]


def add_model_args(p: argparse.ArgumentParser, weights_default: str = "auto") -> None:
    """--model / --model-arg / --weights, shared by every subcommand that builds a timm model."""
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="override passed to timm.create_model (img_size, patch_size, embed_dim, depth, "
                        "num_heads, num_classes, in_chans); repeatable")
    p.add_argument("--weights", default=weights_default, metavar="W",
                   help="pretrained | random | auto (pretrained, else random with a notice) | PATH to a "
                        f"state_dict/checkpoint (.pth/.pt/.safetensors) (default: {weights_default})")


def add_prune_args(p: argparse.ArgumentParser, target_required: bool = True) -> None:
    """Target, calibration and criterion options of ``prune`` (shared with ``run``)."""
    from .criteria import COMPONENTS, CRITERIA, EMBED_SCORES, FFN_SCORES

    target = p.add_mutually_exclusive_group(required=target_required)
    target.add_argument("--preset", help="built-in configuration (see `snp-edge presets`)")
    target.add_argument("--config", type=Path, help="YAML/JSON file of kept widths or ratios per layer")
    target.add_argument("--target-gmacs", type=float, metavar="X", help="find widths that reach X GMACs (within 2%%)")
    p.add_argument("--calib", help="calibration images: an image folder (ImageFolder or flat) or an .npy "
                                   "array (N,C,H,W float32, preprocessed); default: seeded noise, with a notice")
    p.add_argument("--calib-images", type=int, default=64, metavar="N", help="calibration images used (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed for image sampling and random scores (default 0)")
    p.add_argument("--criterion", choices=CRITERIA,
                   help="criterion for every component; default: snp, with the data-driven value score "
                        "(snp-data) that measured best (docs/accuracy.md); `--criterion snp` is the paper's, literally")
    for comp in COMPONENTS:
        p.add_argument(f"--criterion-{comp}", choices=CRITERIA, help=f"criterion for {comp} (overrides --criterion)")
    p.add_argument("--snp-gamma", type=int, default=8, help="singular triplets of S^h used by the snp Q/K score")
    p.add_argument("--ffn-score", choices=FFN_SCORES, default="act", help="FFN base score under snp (default act)")
    p.add_argument("--embed-score", choices=EMBED_SCORES, default="l1",
                   help="per-layer base score of residual channels under snp (default l1)")
    p.add_argument("--heads", type=int, metavar="H", help="keep H heads per block (head pruning)")
    p.add_argument("--drop-blocks", type=int, default=0, metavar="K", help="also remove the K least important blocks")
    p.add_argument("--round-to", type=int, default=1, metavar="N", help="round pruned widths down to multiples of N")
    p.add_argument("--batch-size", type=int, default=16, help="calibration batch size")


def _print_result(summary: dict, as_json: bool) -> None:
    from .summary import format_summary

    if as_json:
        print(format_summary(summary), file=sys.stderr)
        print(json.dumps(summary))
    else:
        print(format_summary(summary))


def prune_from_args(args: argparse.Namespace, model=None):
    """:func:`snp_edge.prune` with the options of :func:`add_model_args` and :func:`add_prune_args`
    (``model``: an already loaded :class:`~snp_edge.models.ModelHandle` instead of ``args.model``)."""
    from .api import prune
    from .criteria import DEFAULT_CRITERIA
    from .models import parse_model_args

    return prune(
        model or args.model, weights=args.weights, model_args=parse_model_args(args.model_arg),
        preset=args.preset, config=args.config, target_gmacs=args.target_gmacs,
        calib=args.calib, calib_images=args.calib_images, seed=args.seed,
        criteria={c: getattr(args, f"criterion_{c}") or args.criterion or DEFAULT_CRITERIA[c] for c in
                  DEFAULT_CRITERIA},
        gamma=args.snp_gamma, ffn_score=args.ffn_score, embed_score=args.embed_score,
        heads=args.heads, drop_blocks=args.drop_blocks, round_to=args.round_to,
        batch_size=args.batch_size, progress=not getattr(args, "json", False))


def cmd_prune(args: argparse.Namespace) -> int:
    from .saved import check_output_dir, save_pruned

    out = Path(args.out)
    check_output_dir(out, args.force)
    result = prune_from_args(args)
    save_pruned(result.handle, out, extra={"summary": result.summary, "pruning": result.recipe}, force=args.force)
    _print_result({**result.summary, "out": str(out)}, args.json)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .saved import read_description

    desc = read_description(args.path)
    _print_result({**desc["summary"], "pruning": desc.get("pruning")} if args.json else desc["summary"], args.json)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .targets import list_presets, load_preset

    for name in list_presets():
        cfg = load_preset(name)
        print(f"{name:<20} {cfg['model']:<26} {cfg.get('description', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snp-edge", description="SNP pruning of timm ViTs for edge GPUs")
    parser.add_argument("--version", action="version", version=f"snp-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prune", help="prune a timm DeiT/ViT into a smaller dense model")
    p.add_argument("--model", required=True, help="timm model name, e.g. deit_small_patch16_224")
    add_model_args(p)
    add_prune_args(p)
    p.add_argument("--out", required=True, help="output folder (model.safetensors + model.json)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line of stdout")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("info", help="summary of a pruned model folder")
    p.add_argument("path", help="pruned model folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("presets", help="list the built-in pruning presets")
    p.set_defaults(func=cmd_presets)

    for register in _stage_parsers():
        register(sub)
    return parser


def _stage_parsers() -> list[Callable]:
    """Subcommands of the later stages (export, bench, ...), registered when their packages are present."""
    found = []
    for module in ("export.cli", "bench.cli", "snp_edge.pipeline", "snp_edge.train.cli"):
        try:
            mod = __import__(module, fromlist=["add_subparsers"])
        except ModuleNotFoundError as exc:
            if exc.name in (module, module.split(".")[0]):
                continue
            raise
        found.append(mod.add_subparsers)
    return found


def main(argv: list[str] | None = None) -> int:
    return run_parsed(build_parser().parse_args(argv))


def run_parsed(args: argparse.Namespace) -> int:
    """Run a parsed subcommand: a :class:`SnpEdgeError` becomes one line on stderr and exit status 1."""
    try:
        return args.func(args)
    except SnpEdgeError as exc:
        print(f"snp-edge {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"snp-edge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
