"""The signals a command honours, SIGINT (Ctrl-C) and SIGTERM, remembered even when a library swallows them.

While :func:`snp_edge.engines.common.runner.run_command` runs a command, Ctrl-C raises ``KeyboardInterrupt`` and
SIGTERM raises :class:`Terminated`, and both are recorded in :data:`RECEIVED`. A library may catch the exception
(torch does when Ctrl-C lands inside numpy's import, and goes on without numpy): :func:`raise_if_received`, called
before anything is published (:mod:`.fileio`), raises it again, so an interrupted command never leaves an output,
and the runner reports whatever fails after a signal as that signal. Python 3.6, standard library only.
"""

import signal

from .errors import EXIT_INTERRUPTED, EXIT_TERMINATED


class Terminated(Exception):
    """SIGTERM (``timeout``, ``docker stop``, a supervisor): unwinds like Ctrl-C, so staged files go."""


RECEIVED = []  # the signals that arrived while a command ran, in order
OUTCOME = {signal.SIGINT: (EXIT_INTERRUPTED, "interrupted"), signal.SIGTERM: (EXIT_TERMINATED, "terminated")}


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
    RECEIVED.append(signal.SIGTERM)
    raise Terminated()


def _interrupt(signum, frame):
    RECEIVED.append(signal.SIGINT)
    raise KeyboardInterrupt()


def install():
    """Forget earlier signals and install the handlers: SIGTERM always, SIGINT where Ctrl-C raises
    KeyboardInterrupt (not where the caller ignores it). Returns ``{signal: handler it replaced}``; empty in a
    thread other than the main one (an application calling ``main()``), where no handler can be installed."""
    del RECEIVED[:]
    previous = {}
    try:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _terminate)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupt)
    except ValueError:
        pass
    return previous


def restore(previous):
    """Put back the handlers :func:`install` replaced and forget the signals received."""
    del RECEIVED[:]
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def first_received():
    """The first signal that arrived while the command ran (SIGINT, SIGTERM), or None."""
    return RECEIVED[0] if RECEIVED else None


def raise_if_received():
    """Raise again the first signal that arrived (``KeyboardInterrupt`` or :class:`Terminated`), if any."""
    signum = first_received()
    if signum is not None:
        raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()
