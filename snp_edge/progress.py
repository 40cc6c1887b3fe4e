"""Progress bars (tqdm, on stderr) that never leave a log line unfinished.

On a terminal a finished bar is cleared; anywhere else (a log file, a pipe) it is kept and ends with a
newline, so an error or warning printed after it starts a line of its own. Bars still open when a command
fails are closed by :func:`snp_edge.cli.end_progress_line` before the message is printed. A new bar first
raises a Ctrl-C or SIGTERM that a library swallowed (:mod:`snp_edge.engines.common.signals`), so long work stops
at its next stage.
"""

from __future__ import annotations

import sys

from .engines.common.signals import raise_if_received


def bar(iterable=None, **kwargs):
    """``tqdm(iterable, **kwargs)`` with ``leave`` set for where stderr goes (see the module docstring)."""
    from tqdm import tqdm

    raise_if_received()
    kwargs.setdefault("leave", not sys.stderr.isatty())
    return tqdm(iterable, **kwargs)
