"""Refusing allocations this machine cannot hold, before they are attempted.

A number nobody checked (``--calib-images 1000000``, a 50,000,000-wide layer in a model.json, ``--batch
65536`` at 384 px) would otherwise end in minutes of swapping or the kernel's OOM killer; these checks turn
it into one line naming the option and the sizes.
"""

from __future__ import annotations

import os

from .engines.common.errors import MissingPrerequisite


def available_bytes() -> int:
    """Memory this process can still allocate: ``MemAvailable`` of /proc/meminfo (free plus reclaimable
    caches), else total physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def check_allocation(nbytes: int | float, what: str, hint: str = "") -> None:
    """Refuse (exit 3, a missing prerequisite: memory) if ``nbytes`` exceed the available memory."""
    have = available_bytes()
    if nbytes > have:
        raise MissingPrerequisite(f"{what} needs {_size(nbytes)} of memory; this machine has {_size(have)} "
                                  f"available{'; ' + hint if hint else ''}")


def _size(nbytes: int | float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} bytes"
