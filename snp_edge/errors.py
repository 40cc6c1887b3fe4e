"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class SnpEdgeError(Exception):
    """A user-facing error: bad input, unsupported model, unreadable file.

    The message is a single line that names what is wrong and, where useful, what to do instead.
    """
