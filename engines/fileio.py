"""Atomic file writes: write a temporary file in the target's directory, then ``os.replace`` it, so an
interrupted or failed run never leaves a partial engine, sidecar or JSON behind."""

import json
import os
import tempfile


def write_bytes_atomic(path, data):
    """Write ``data`` (bytes) to ``path`` atomically; creates the parent directory."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json_atomic(path, obj):
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))
