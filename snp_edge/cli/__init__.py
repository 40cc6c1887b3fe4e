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
=============  ==========================================================================

Exit statuses (the same as ``python3 -m engines``, see :mod:`snp_edge.engines.errors`): 0 ok, 1 a
verification gate failed, 2 usage error or bad input, 3 missing prerequisite, 130 interrupted, 143
terminated. Errors are one line on stderr, ``snp-edge COMMAND: error: ...``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from importlib import import_module

from .. import __version__
from ..engines.argtypes import OneLineParser
from ..engines.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, UserError, first_line
from .args import formatter

COMMAND_MODULES = ("prune", "export", "bench", "pipeline", "train")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="snp-edge", formatter_class=formatter,
                                     description="SNP pruning of timm ViTs for edge GPUs: prune -> export ONNX -> "
                                                 "device bundles -> benchmarks. `snp-edge run` is the main job.")
    parser.add_argument("--version", action="version", version=f"snp-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(f".{name}", __name__).register(sub)
    return parser


class Terminated(Exception):
    """SIGTERM (``timeout``, ``docker stop``): unwinds like Ctrl-C so staged outputs are removed."""


def _terminate(signum, frame):
    raise Terminated()


def run_parsed(args: argparse.Namespace) -> int:
    """Run a parsed subcommand: a user error becomes one line on stderr and its exit status."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"snp-edge {args.command}: error: {first_line(exc, 400)}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print(f"snp-edge {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"snp-edge {args.command}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the subcommand; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: their own status
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    except KeyboardInterrupt:
        print("snp-edge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run_parsed(args)
