"""Errors with one-line messages; the CLI prints ``error: <message>`` and exits non-zero."""


class EnginesError(Exception):
    """A failure the user can act on; ``str(exc)`` is one line."""


class ManifestError(EnginesError):
    """A bundle's manifest.json is missing, malformed, or does not match the bundle's files."""


class IncompatibleEngine(EnginesError):
    """An engine was built with another TensorRT version, GPU or compute capability."""
