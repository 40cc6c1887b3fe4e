"""Exit statuses and exception types shared by ``snp-edge`` and ``python3 -m engines``.

Every failure a user can act on is one of these exceptions; the command lines print its message as one
line (``error: ...``) and exit with its :attr:`UserError.exit_status`:

====  ==========================================================================================
 0    success
 1    a verification gate failed (parity, golden outputs, engine verify): the result is wrong
 2    usage error or bad input (a flag, a file, a bundle, a model the tool refuses)
 3    a prerequisite is missing on this machine (TensorRT, a CUDA binding, trtexec, disk, memory)
 4    power mode or clocks could not be set or restored (``sudo -n`` refused, nvpmodel failed)
130   interrupted (Ctrl-C / SIGINT); 143 terminated (SIGTERM)
====  ==========================================================================================

Every other exception gets its status from the one table in :mod:`.runner` (used by both command lines).
"""

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_MISSING_PREREQUISITE = 3
EXIT_POWER = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UserError(Exception):
    """A failure the user can act on; ``str(exc)`` is one line naming what is wrong."""

    exit_status = EXIT_BAD_INPUT


class EnginesError(UserError):
    """A device-side failure caused by input or environment."""


class ManifestError(EnginesError):
    """A bundle's manifest.json is missing, malformed, or does not match the bundle's files."""


class IncompatibleEngine(EnginesError):
    """An engine was built with another TensorRT version, GPU or compute capability."""


class VerificationFailed(EnginesError):
    """A result was computed but failed its gate (outputs outside tolerance, non-finite numbers)."""

    exit_status = EXIT_VERIFY_FAILED


class MissingPrerequisite(EnginesError):
    """Something this machine lacks: TensorRT bindings, a CUDA binding, trtexec, free disk or memory."""

    exit_status = EXIT_MISSING_PREREQUISITE


class PowerModeError(EnginesError):
    """The Jetson power mode or clocks could not be read, set or restored."""

    exit_status = EXIT_POWER


def first_line(exc, limit=200):
    """The first line of ``str(exc)`` (at most ``limit`` characters), or the exception's type name. A longer line
    loses its middle, not its end: a long path inside a message must not cut off the reason that follows it."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if len(text) <= limit:
        return text
    tail = (limit - 3) // 2
    return text[:limit - 3 - tail] + "..." + text[len(text) - tail:]

