"""Options per command of ``snp-edge`` and ``python3 -m engines``: shown (in --help) and hidden (old spellings
kept as aliases for one release). ``python benchmarks/option_counts.py`` prints a Markdown table;
docs/usage.md holds its before/after. The flag-coverage test (tests/test_flag_coverage.py) walks the same
parsers with :func:`commands`."""

from __future__ import annotations

import argparse
import sys


def commands(parser: argparse.ArgumentParser, prefix: str = ""):
    """(command path, parser) for ``parser`` and every subcommand under it, depth first."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if sub is not parser:
                    yield from commands(sub, f"{prefix} {name}".strip())


def options(parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """(shown, hidden) option strings of ``parser`` itself (-h/--help left out)."""
    shown, hidden = [], []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        (hidden if action.help == argparse.SUPPRESS else shown).append(action.option_strings[-1])
    return shown, hidden


def parsers() -> dict[str, argparse.ArgumentParser]:
    from snp_edge.engines.cli import build_parser as device_parser

    from snp_edge.cli import build_parser

    return {"snp-edge": build_parser(), "python3 -m engines": device_parser()}


def table() -> str:
    rows = ["| command | options shown | hidden aliases |", "|---|---:|---:|"]
    for prog, parser in parsers().items():
        for path, p in commands(parser):
            if path:
                shown, hidden = options(p)
                rows.append(f"| `{prog} {path}` | {len(shown)} | {len(hidden)} |")
    return "\n".join(rows)


def main() -> int:
    sys.stdout.write(table() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
