"""One command runner for ``snp-edge`` and ``python3 -m engines``: exceptions -> exit statuses, signals, one line.

:func:`run_command` runs a command's function with Ctrl-C and SIGTERM handled by :mod:`.signals` (both unwind
and staged outputs are removed, even when a library swallowed the exception), and turns whatever it raises into
one line on stderr and the exit status that :data:`FAILURES` (the one table, first matching row wins) gives it;
see :mod:`.errors` for the statuses.
Python 3.6, standard library only: the device code and the host command line both import it.
"""

import errno
import os
import sys

from . import signals
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_MISSING_PREREQUISITE,
    EXIT_TERMINATED,
    UserError,
    first_line,
)
from .fileio import cleanup_staged
from .signals import Terminated

INSTALL_HINTS = {"numpy": "the device code needs it (python3 -m pip install --user numpy; on JetPack: sudo apt-get "
                          "install python3-numpy)"}  # Pillow, TensorRT, onnxruntime raise their own hints
MESSAGE_LIMIT = 1000  # characters of a user error's line: room for two long paths and the reason between them
EXHAUSTED = (errno.ENOSPC, errno.EDQUOT, errno.ENOMEM)  # OSErrors that mean the machine ran out, not bad input


def _hinted_import(exc):
    return isinstance(exc, ImportError) and (getattr(exc, "name", None) or "").split(".")[0] in INSTALL_HINTS


def _import_message(exc):
    name = exc.name.split(".")[0]
    return "{} does not import ({}): {}".format(name, first_line(exc), INSTALL_HINTS[name])


def _os_status(exc):
    return EXIT_MISSING_PREREQUISITE if exc.errno in EXHAUSTED else EXIT_BAD_INPUT


def _os_message(exc):
    text = exc.strerror or first_line(exc)
    return "{}: {}".format(exc.filename, text) if getattr(exc, "filename", None) else text


def _unexpected(exc):
    return "unexpected {}: {} (set SNP_EDGE_DEBUG=1 for the traceback)".format(type(exc).__name__, first_line(exc))


# (test, exit status or function of the exception, one-line message or function of it); the first match decides.
FAILURES = (
    (lambda e: isinstance(e, UserError), lambda e: e.exit_status, lambda e: first_line(e, MESSAGE_LIMIT)),
    (lambda e: isinstance(e, KeyboardInterrupt), EXIT_INTERRUPTED, "interrupted"),
    (lambda e: isinstance(e, Terminated), EXIT_TERMINATED, "terminated"),
    (lambda e: isinstance(e, MemoryError), EXIT_MISSING_PREREQUISITE, "out of memory"),
    (_hinted_import, EXIT_MISSING_PREREQUISITE, _import_message),
    (lambda e: isinstance(e, OSError), _os_status, _os_message),
    (lambda e: isinstance(e, RecursionError), EXIT_BAD_INPUT, "input nested too deeply"),
    (lambda e: True, EXIT_BAD_INPUT, _unexpected),
)
SIGNALLED = (EXIT_INTERRUPTED, EXIT_TERMINATED)


def describe_failure(exc, after_signal=None):
    """``(exit status, one-line message)`` for any exception a command raised: every path has its status.

    ``after_signal``: the signal that arrived before ``exc`` (SIGINT, SIGTERM), which decides instead of ``exc``.
    """
    if after_signal is not None:
        return signals.OUTCOME[after_signal]
    for matches, status, message in FAILURES:
        if matches(exc):
            return (status(exc) if callable(status) else status), (message(exc) if callable(message) else message)
    raise AssertionError("FAILURES ends with a catch-all row")  # pragma: no cover


def failure_line(status, message, label=""):
    """The stderr line: ``LABEL: error: MESSAGE`` (``LABEL: interrupted`` for a signal); no label: ``error: ...``."""
    if not label:
        return "error: " + message
    return "{}: {}".format(label, message if status in SIGNALLED else "error: " + message)


def run_command(func, args, label="", before_message=None):
    """``func(args)`` -> its exit status; any exception -> one line on stderr and the status :data:`FAILURES` gives.

    ``label`` goes in front of the line (``snp-edge prune``); ``before_message()`` runs before it is printed (to end
    a progress bar's line). Whatever fails after Ctrl-C or SIGTERM arrived is reported as that signal. Staged
    outputs are removed and the signal handlers restored on every path.
    """
    previous = signals.install()
    try:
        status = func(args)
        signals.raise_if_received()  # a signal a library swallowed: the command was interrupted all the same
        return status
    except BaseException as exc:  # noqa: B036 (every exit path gets its documented status)
        if isinstance(exc, SystemExit):
            raise
        status, message = describe_failure(exc, signals.first_received())
        if os.environ.get("SNP_EDGE_DEBUG") and status not in SIGNALLED:
            import traceback

            traceback.print_exc()
        if before_message is not None:
            before_message()
        print(failure_line(status, message, label), file=sys.stderr)
        return status
    finally:
        cleanup_staged()
        signals.restore(previous)
