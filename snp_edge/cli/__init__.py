"""The ``snp-edge`` command line: the application layer, on top of every stage.

One module per group of subcommands, each registering its parsers and handlers; building the parser imports
nothing heavy (``snp-edge --help`` runs in well under a second), handlers import their stages when they run.

=============  ==========================================================================
module         subcommands
=============  ==========================================================================
``prune``      ``prune``, ``info``, ``presets``
``export``     ``export``, ``bundle``
``bench``      ``bench``
``pipeline``   ``run`` (the main job) and ``compare``: one orchestrator
``train``      ``finetune``, ``eval``
``quantize``   ``quantize`` (INT8, accuracy-gated)
``iterate``    ``prune-iterative`` (prune-distil rounds down to a MAC budget)
=============  ==========================================================================

Exit statuses (the same as ``python3 -m engines``, see :mod:`snp_edge.engines.common.errors`): 0 ok, 1 a
verification gate failed, 2 usage error or bad input, 3 missing prerequisite, 4 power mode, 130
interrupted, 143 terminated. Errors are one line on stderr, ``snp-edge COMMAND: error: ...``, on a line of their own even
when a progress bar was drawing; warnings are one line too (``snp-edge COMMAND: warning: ...``). This module
imports only the standard library and two small device-side modules, so Ctrl-C even in the first moments
(while the command line imports) ends in one line, not a traceback; commands run through the runner that
``python3 -m engines`` uses (:mod:`snp_edge.engines.common.runner`: one table of exceptions and statuses).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib import import_module

from .. import __version__
from ..engines.common.argtypes import OneLineParser
from ..engines.common.errors import EXIT_INTERRUPTED, first_line

COMMAND_MODULES = ("prune", "export", "bench", "pipeline", "train", "profile", "quantize", "iterate")


def build_parser() -> argparse.ArgumentParser:
    from .args import formatter

    parser = OneLineParser(prog="snp-edge", formatter_class=formatter,
                                     description="SNP pruning of timm ViTs for edge GPUs: prune -> export ONNX -> "
                                                 "device bundles -> benchmarks. `snp-edge run` is the main job.")
    parser.add_argument("--version", action="version", version=f"snp-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(f".{name}", __name__).register(sub)
    return parser


def end_progress_line() -> None:
    """Close the progress bars still drawing, each ending its line, so that the next message starts on a line
    of its own (finished bars already do: :mod:`snp_edge.progress`)."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        if not bar.disable:
            bar.leave = True
            bar.close()


def _one_line_warnings(command: str):
    """``warnings.showwarning`` for the command line: ``snp-edge COMMAND: warning: MESSAGE``."""
    def show(message, category, filename, lineno, file=None, line=None):
        end_progress_line()
        print(f"snp-edge {command}: warning: {first_line(message, 400)}", file=file or sys.stderr)

    return show


def run_parsed(args: argparse.Namespace) -> int:
    """Run a parsed subcommand through the shared runner (:mod:`snp_edge.engines.common.runner`, the same table of exit
    statuses as ``python3 -m engines``): a failure becomes one line on stderr and its exit status."""
    from ..engines.common.runner import run_command

    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(args.command)
        return run_command(args.func, args, label=f"snp-edge {args.command}", before_message=end_progress_line)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the subcommand; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: their own status
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    except KeyboardInterrupt:
        print("snp-edge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        return run_parsed(args)
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's clean-up ran
        print(f"snp-edge {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
