"""The host's user-facing error. Exit statuses and the device side's errors are in :mod:`snp_edge.engines.common.errors`."""

from .engines.common.errors import UserError, VerificationFailed, first_line

__all__ = ["SnpEdgeError", "SnpEdgeWarning", "VerificationFailed", "first_line"]


class SnpEdgeError(UserError):
    """A user-facing error: bad input, unsupported model, unreadable file (exit status 2).

    The message is a single line that names what is wrong and, where useful, what to do instead.
    """


class SnpEdgeWarning(UserWarning):
    """Valid but odd input that snp-edge handles in its documented way (the command line shows it as one
    ``warning:`` line)."""
