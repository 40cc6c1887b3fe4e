"""Memory checks before an allocation that a manifest or an option sizes (a resize, a batch): refuse with one
line instead of swapping a Jetson to a halt or being killed. Python 3.6, standard library only."""

from .common.errors import MissingPrerequisite

MEMINFO = "/proc/meminfo"


def available_bytes(meminfo=MEMINFO):
    """MemAvailable from ``/proc/meminfo`` in bytes, or None where the system does not say (not Linux)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(nbytes, what, meminfo=MEMINFO):
    """Refuse (:class:`MissingPrerequisite`, exit 3) allocating ``nbytes`` for ``what`` when this machine has
    less memory available."""
    free = available_bytes(meminfo)
    if free is not None and nbytes > free:
        raise MissingPrerequisite("{} needs {:.1f} MiB, this machine has {:.1f} MiB available".format(
            what, nbytes / 2.0 ** 20, free / 2.0 ** 20))
