"""Where the device side may write a file a user names (``--json-file``, ``--status-file``, ``--timing-cache``,
``--export-times``, ``profile --out``): never over a bundle's own files, never where a bundle would refuse
the file, and only into a folder it can write; checked before any work starts (exit 2, one line, nothing
written).

A destination inside a bundle (the nearest folder above it holding a manifest.json) must be a name one of
the bundle's writable places allows (``engines._bootstrap``: result files ``*.json`` / ``*.log`` in the root,
``trt-cache/`` names, ...) and must not be manifest.json or a file the manifest lists.
"""

import os
import tempfile

from . import _bootstrap
from .common.errors import UserError

OUTPUT_FLAGS = (("json_file", "--json-file"), ("status_file", "--status-file"), ("timing_cache", "--timing-cache"),
                ("export_times", "--export-times"), ("out", "--out"))
_MAX_LEVELS = 64


def enclosing_bundle(path):
    """The realpath of the nearest folder at or above ``path``'s folder that holds a manifest.json, or None."""
    folder = os.path.dirname(os.path.realpath(path))
    for _ in range(_MAX_LEVELS):
        if os.path.isfile(os.path.join(folder, _bootstrap.MANIFEST_NAME)):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return None


def check_output(path, flag):
    """Refuse (:class:`UserError`, exit 2) writing ``path``: a bundle's manifest.json or listed file, a name the
    enclosing bundle would refuse, a folder, or a folder this process cannot write."""
    if os.path.isdir(path):
        raise UserError("{} {}: is a folder; give a file path".format(flag, path))
    root = enclosing_bundle(path)
    if root is not None:
        rel = os.path.relpath(os.path.realpath(path), root).replace(os.sep, "/")
        try:
            manifest = _bootstrap.read_manifest(root, UserError)[0]
            files = _bootstrap.check_files_field(manifest, UserError)
            places = _bootstrap.writable_places(manifest, UserError)
        except UserError:
            files, places = {}, _bootstrap.writable_places({})
        if rel == _bootstrap.MANIFEST_NAME or rel in files:
            raise UserError("{} {}: is {} of the bundle {}; a command never writes over a bundle's own files: "
                            "choose another path".format(flag, path, rel, root))
        folder, name = os.path.dirname(rel), os.path.basename(rel)
        if not _bootstrap.writable_name(folder, name, places):
            raise UserError("{} {}: the bundle {} would refuse {} (its writable places: {}): choose another "
                            "path".format(flag, path, root, rel, _bootstrap.describe_places(places)))
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError("{} {}: folder {} not found".format(flag, path, parent))
    try:  # a probe, as the atomic write will do: permissions, read-only mounts, root's privileges all count
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError("{} {}: cannot write in {}: {}".format(flag, path, parent, exc.strerror or exc)) from None


def check_outputs(args):
    """:func:`check_output` for every output flag ``args`` (argparse namespace) sets; deploy's default status
    file (``BUNDLE/deploy-status.json``) too."""
    for attr, flag in OUTPUT_FLAGS:
        value = getattr(args, attr, None)
        if isinstance(value, str) and value:
            check_output(value, flag)
    if getattr(args, "command", None) == "deploy" and not getattr(args, "status_file", None) \
            and os.path.isdir(args.bundle):
        check_output(os.path.join(args.bundle, "deploy-status.json"), "--status-file")
