"""``snp-edge prune``, ``info`` and ``presets``: the host stage."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import args as groups


def print_result(summary: dict, as_json: bool) -> None:
    """The summary table (to stderr with --json, whose JSON object is then the last line of stdout)."""
    from ..summary import format_summary

    if as_json:
        print(format_summary(summary), file=sys.stderr)
        print(json.dumps(summary))
    else:
        print(format_summary(summary))


def prune_from_args(args: argparse.Namespace, model=None, **target):
    """:func:`snp_edge.api.prune_spec` of the command's :func:`~snp_edge.cli.args.prune_spec`; the target from
    ``args`` unless one of ``preset``/``config``/``target_gmacs``/``target_latency``/``target_speedup`` is given
    (``model``: a loaded handle instead of ``args.model``)."""
    from ..api import prune_spec

    groups.resolve_round_to(args)
    return prune_spec(groups.prune_spec(args, **target), model, progress=not getattr(args, "json", False))


def cmd_prune(args: argparse.Namespace) -> int:
    from ..engines.common.fileio import Output

    with Output(args.out, args.force, kind="dir") as out:  # checked before torch is even imported
        from ..saved import write_pruned

        result = prune_from_args(args)
        write_pruned(result.handle, Path(out.stage()), extra={"summary": result.summary, "pruning": result.recipe})
        out.publish()
    print_result({**result.summary, "out": str(args.out)}, args.json)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..saved import check_against_base, read_description

    desc = read_description(args.path)
    check_against_base(desc, str(args.path))  # export's checks: a base model it prunes, widths that fit it
    if "summary" not in desc:
        from ..errors import SnpEdgeError

        raise SnpEdgeError(f"{args.path}: model.json has no summary (written by another tool?)")
    print_result({**desc["summary"], "pruning": desc.get("pruning")} if args.json else desc["summary"], args.json)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from ..presets import list_presets, load_preset

    rows = []
    for name in list_presets():
        cfg = load_preset(name)
        rows.append({"name": name, "model": cfg["model"], "description": cfg.get("description", "")})
    if args.json:
        print(json.dumps({"presets": rows}))
    else:
        for r in rows:
            print(f"{r['name']:<20} {r['model']:<26} {r['description']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("prune", help="prune a timm DeiT/ViT into a smaller dense model", formatter_class=groups.formatter,
                       description="Prune a timm DeiT/ViT with SNP into a smaller dense model (model.safetensors + "
                                   "model.json).")
    p.add_argument("--model", required=True, help="timm model name, e.g. deit_small_patch16_224")
    groups.model(p)
    groups.prune_target(p)
    groups.scoring(p)
    groups.device_target(p, purpose="the device the widths are aligned for (--round-to's default)")
    groups.seed(p)
    groups.output(p, "output folder (model.safetensors + model.json)")
    groups.advanced(p)
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("info", help="summary of a pruned model folder", formatter_class=groups.formatter)
    p.add_argument("path", help="pruned model folder (or its model.json)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("presets", help="list the built-in pruning presets", formatter_class=groups.formatter)
    p.add_argument("--json", action="store_true", help="print the list as one JSON object")
    p.set_defaults(func=cmd_presets)
