"""The first code a bundle runs: the integrity check, from the standard library only, before anything else of
the bundle is imported; and an import hook that compiles the bundle's modules from their source (never from
byte code).

Loaded by the launcher (``engines/__main__.py``) and by ``engines/__init__.py`` from this file's *source*
(``compile(open(...).read())``, not ``import``), so no ``__pycache__`` file can stand in for it; it imports
only hashlib, json, os, stat, sys and fnmatch, and the bundle root is off ``sys.path`` when it runs, so no
``numpy.py`` or ``json.py`` in the bundle can either. What it checks (:func:`check_bundle`): every file
manifest.json lists is a regular file inside the bundle, reached through no symbolic link, with the listed
sha256; nothing else is there except in the *writable places* the manifest declares (``writable``:
``{folder: [file-name patterns]}``, "." the bundle root), whose files must be regular files matching a
pattern, never code (``*.py``, ``*.pyc``, ``*.so``, ...), never links; no ``__pycache__`` or ``.pyc``
anywhere. Bundles written before ``writable`` existed get :data:`DEFAULT_WRITABLE`.

Out of scope (see docs/device-workflow.md, "Integrity"): whoever can rewrite this file, the launcher,
manifest.json or the stage scripts can make the bundle say anything; the check guards against an incomplete
copy, an edit or an added file, including added byte code and added modules.
"""

import fnmatch
import hashlib
import json
import os
import stat
import sys

MANIFEST_NAME = "manifest.json"
CACHE_DIR_NAME = "trt-cache"  # engines, sidecars and timing caches the device side writes
TRT_CACHE_PATTERNS = ("*.engine", "*.engine.json", "timing_*.cache")
RESULT_PATTERNS = ("*.json", "*.log")  # --json-file, --status-file, logs in the bundle root
DEFAULT_WRITABLE = {CACHE_DIR_NAME: list(TRT_CACHE_PATTERNS), ".": list(RESULT_PATTERNS)}
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".pyw", ".so", ".pth", ".dylib", ".dll")  # never writable
_STAGED_SUFFIXES = (".partial", ".scratch", ".old")  # engines.common.fileio's hidden temporaries: ".NAME.tmp-XXXXXXXX.partial"
MAX_MANIFEST_BYTES = 64 << 20
_HEX = frozenset("0123456789abcdef")
_VERIFIED = {}  # realpath of a bundle root -> sha256 of the manifest.json the bootstrap verified it with


class BundleIntegrityError(Exception):
    """A bundle failed its integrity check (exit status 2: bad input)."""

    exit_status = 2


def sha256_file(path, chunk_bytes=1 << 20):
    """The sha256 hex digest of a file, read in ``chunk_bytes`` chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def _shown(value):
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _inside(rel):
    parts = rel.replace("\\", "/").split("/")
    return bool(rel) and not rel.startswith("/") and ".." not in parts and "" not in parts


def check_files_field(m, error=BundleIntegrityError):
    """``m["files"]``: ``{relative path: lowercase sha256 hex}``; returns it."""
    files = m.get("files") if isinstance(m, dict) else None
    if not isinstance(files, dict):
        raise error("manifest.json: field files: expected an object, got {}".format(_shown(files)))
    for path, digest in sorted(files.items()):
        if path == MANIFEST_NAME or not _inside(path):
            raise error("manifest.json: field files[{!r}]: expected a relative path inside the bundle other than "
                        "manifest.json, got {}".format(path, _shown(path)))
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
            raise error("manifest.json: field files[{!r}]: expected a lowercase sha256 hex digest, got {}".format(
                path, _shown(digest)))
        if path.endswith((".pyc", ".pyo")) or "__pycache__" in path.split("/"):
            raise error("manifest.json: field files[{!r}]: a bundle ships no byte code".format(path))
    return files


def is_code_path(rel):
    """Whether a path names Python byte code, a ``__pycache__`` folder or a native/Python module."""
    name = rel.rstrip("/").split("/")[-1]
    return name == "__pycache__" or name.endswith(CODE_SUFFIXES)


def writable_places(m, error=BundleIntegrityError):
    """``{folder ("" = bundle root): (patterns...)}`` from ``m["writable"]`` (checked), or the defaults."""
    declared = m.get("writable", DEFAULT_WRITABLE) if isinstance(m, dict) else DEFAULT_WRITABLE
    if not isinstance(declared, dict):
        raise error("manifest.json: field writable: expected an object {folder: [file-name patterns]}, got "
                    + _shown(declared))
    files = m.get("files") if isinstance(m, dict) and isinstance(m.get("files"), dict) else {}
    places = {}
    for folder, patterns in sorted(declared.items()):
        field = "manifest.json: field writable[{!r}]".format(folder)
        if not isinstance(folder, str) or not (folder == "." or _inside(folder)) or folder in files \
                or folder == MANIFEST_NAME or "__pycache__" in folder.split("/"):
            raise error(field + ": expected '.' or a relative folder inside the bundle, got " + _shown(folder))
        if not isinstance(patterns, list) or not patterns or not all(
                isinstance(p, str) and p and "/" not in p and "\\" not in p and not p.startswith(".")
                and not is_code_path(p) and p != MANIFEST_NAME for p in patterns):
            raise error(field + ": expected a list of file-name patterns (no '/', no leading '.', no code), got "
                        + _shown(patterns))
        places["" if folder == "." else folder] = tuple(patterns)
    return places


def _staged(name):
    """engines.common.fileio's hidden temporary of an atomic write in progress (``.NAME.tmp-XXXXXXXX.partial``)."""
    return name.startswith(".") and ".tmp-" in name and name.endswith(_STAGED_SUFFIXES)


def writable_name(folder_rel, name, places):
    """Whether an unlisted file ``name`` in the folder ``folder_rel`` is one the declared places allow."""
    patterns = places.get(folder_rel)
    if patterns is None or is_code_path(name) or name == MANIFEST_NAME:
        return False
    return _staged(name) or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def describe_places(places, limit=3):
    """``trt-cache/ (*.engine, ...), ./ (*.json, *.log)``: for error messages."""
    shown = ["{}/ ({})".format(folder or ".", ", ".join(p[:limit]) + (", ..." if len(p) > limit else ""))
             for folder, p in sorted(places.items())]
    return "; ".join(shown) or "none"


def _check_listed_file(bundle_dir, root, rel, error):
    path = bundle_dir
    for part in rel.split("/"):
        path = os.path.join(path, part)
        if os.path.islink(path):
            shown = os.path.relpath(path, bundle_dir).replace(os.sep, "/")
            raise error("bundle file {}: {} is a symbolic link; a bundle holds real files only (copy it with "
                        "rsync -a, cp -r or tar, which keep files)".format(rel, shown))
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise error("bundle file {}: listed in manifest.json but missing".format(rel)) from None
    if not stat.S_ISREG(mode):
        raise error("bundle file {}: not a regular file".format(rel))
    real = os.path.realpath(path)
    if not real.startswith(root.rstrip(os.sep) + os.sep):
        raise error("bundle file {}: resolves to {}, outside the bundle".format(rel, real))
    return path


def verify_files(bundle_dir, files, error=BundleIntegrityError):
    """Check every listed file (a regular file inside the bundle, through no symbolic link, with the listed
    sha256); returns the checked relative paths, sorted."""
    root = os.path.realpath(bundle_dir)
    if os.path.islink(os.path.join(bundle_dir, MANIFEST_NAME)):
        raise error("{} is a symbolic link; a bundle holds real files only".format(MANIFEST_NAME))
    checked = []
    for rel, expected in sorted(files.items()):
        actual = sha256_file(_check_listed_file(bundle_dir, root, rel, error))
        if actual != expected:
            raise error("bundle file {}: sha256 mismatch (manifest {}..., file {}...): the bundle was modified or "
                        "copied incompletely".format(rel, expected[:12], actual[:12]))
        checked.append(rel)
    return checked


def unlisted_entries(bundle_dir, files, places):
    """Bundle paths that are neither listed in ``files`` nor allowed in a writable place, and every symbolic
    link: ``[(relative path, why)]``, sorted by path."""
    listed = set(files) | {MANIFEST_NAME}
    folders = {""}
    for rel in list(listed) + [p + "/x" for p in places if p]:
        parts = rel.split("/")[:-1]
        folders.update("/".join(parts[:i + 1]) for i in range(len(parts)))
    problems = []
    for top, dirs, names in os.walk(bundle_dir):
        here = os.path.relpath(top, bundle_dir).replace(os.sep, "/")
        here = "" if here == "." else here
        for d in sorted(dirs):
            rel = "/".join(filter(None, [here, d]))
            if os.path.islink(os.path.join(top, d)):
                problems.append((rel, "a symbolic link" + (" (use --cache-dir for engines kept elsewhere)"
                                                           if rel in places else "")))
            elif d == "__pycache__":
                problems.append((rel + "/", "Python byte code (a bundle ships none and its device code never reads "
                                            "or writes any)"))
            elif rel not in folders:
                problems.append((rel + "/", "a folder manifest.json does not list"))
        dirs[:] = [d for d in dirs if "/".join(filter(None, [here, d])) in folders and d != "__pycache__"
                   and not os.path.islink(os.path.join(top, d))]
        for name in sorted(names):
            rel = "/".join(filter(None, [here, name]))
            full = os.path.join(top, name)
            if os.path.islink(full):
                problems.append((rel, "a symbolic link"))
            elif rel in listed:
                continue
            elif name.endswith((".pyc", ".pyo")):
                problems.append((rel, "Python byte code (a bundle ships none)"))
            elif writable_name(here, name, places) and stat.S_ISREG(os.lstat(full).st_mode):
                continue
            else:
                problems.append((rel, "a file manifest.json does not list"))
    return sorted(problems)


def check_tree(bundle_dir, m, error=BundleIntegrityError):
    """Hashes, then unlisted entries: raises ``error`` naming the first problem; returns ``m``."""
    files = check_files_field(m, error)
    places = writable_places(m, error)
    verify_files(bundle_dir, files, error)
    refuse_unlisted(bundle_dir, files, places, error)
    return m


def refuse_unlisted(bundle_dir, files, places, error=BundleIntegrityError):
    problems = unlisted_entries(bundle_dir, files, places)
    if problems:
        rel, why = problems[0]
        more = " (+{} more)".format(len(problems) - 1) if len(problems) > 1 else ""
        raise error("bundle entry {}: {}{}; remove it: files may be added only where manifest.json's writable "
                    "places allow: {}".format(rel, why, more, describe_places(places)))


def read_manifest(bundle_dir, error=BundleIntegrityError):
    """``(manifest dict, sha256 of its bytes)``: the raw JSON, not yet schema-checked."""
    path = os.path.join(bundle_dir, MANIFEST_NAME)
    if os.path.islink(path):
        raise error("{} is a symbolic link; a bundle holds real files only".format(MANIFEST_NAME))
    try:
        if os.path.getsize(path) > MAX_MANIFEST_BYTES:
            raise error("{}: larger than {} MiB; not a file this tool writes".format(path, MAX_MANIFEST_BYTES >> 20))
        with open(path, "rb") as f:
            data = f.read()
        return json.loads(data.decode("utf-8")), hashlib.sha256(data).hexdigest()
    except (ValueError, UnicodeDecodeError) as exc:
        raise error("{}: not valid JSON ({})".format(path, str(exc).splitlines()[0] if str(exc) else "")) from None
    except RecursionError:
        raise error("{}: JSON nested too deeply".format(path)) from None
    except OSError as exc:
        raise error("cannot read {}: {}".format(path, exc.strerror or exc)) from None


def check_bundle(bundle_dir, error=BundleIntegrityError):
    """The whole check of the bundle at ``bundle_dir``; remembers it was verified (see :func:`take_verified`)."""
    m, digest = read_manifest(bundle_dir, error)
    check_tree(bundle_dir, m, error)
    _VERIFIED[os.path.realpath(bundle_dir)] = digest
    return m


def take_verified(bundle_dir, manifest_sha256):
    """Whether the bootstrap verified ``bundle_dir`` with this very manifest in this process (once: a later
    call hashes the files again)."""
    return _VERIFIED.pop(os.path.realpath(bundle_dir), None) == manifest_sha256


# ---- the import side --------------------------------------------------------------------------------------

def bundle_root_of(package_dir):
    """The bundle root holding ``package_dir`` (engines/), or None when this code is not in a bundle (a
    development checkout, an installed package: no manifest.json beside engines/)."""
    root = os.path.dirname(os.path.abspath(package_dir))
    return root if os.path.lexists(os.path.join(root, MANIFEST_NAME)) else None


def install_source_loader(package_dir, name="engines"):
    """Import ``name`` and ``name.*`` from ``package_dir`` compiled from source, never from byte code (and
    write none): a meta path finder ahead of Python's own."""
    import importlib.machinery
    import importlib.util

    sys.dont_write_bytecode = True
    package_dir = os.path.abspath(package_dir)

    class SourceOnlyLoader(importlib.machinery.SourceFileLoader):
        def get_code(self, fullname):
            path = self.get_filename(fullname)
            return compile(self.get_data(path), path, "exec", dont_inherit=True)

    class SourceOnlyFinder(object):
        def find_spec(self, fullname, path=None, target=None):
            if fullname != name and not fullname.startswith(name + "."):
                return None
            parts = fullname.split(".")[1:]
            base = os.path.join(package_dir, *parts)
            init = os.path.join(base, "__init__.py")
            if os.path.isfile(init):
                return importlib.util.spec_from_file_location(fullname, init, loader=SourceOnlyLoader(fullname, init),
                                                              submodule_search_locations=[base])
            if parts and os.path.isfile(base + ".py"):
                return importlib.util.spec_from_file_location(fullname, base + ".py",
                                                              loader=SourceOnlyLoader(fullname, base + ".py"))
            return None

    if not any(type(f).__name__ == "SourceOnlyFinder" for f in sys.meta_path):
        sys.meta_path.insert(0, SourceOnlyFinder())


def enter(package_dir):
    """What the launcher and ``engines/__init__`` do before anything else of the bundle is imported: no byte
    code written or read, the bundle root and everything inside the bundle off ``sys.path``, and, when
    ``package_dir`` is inside a bundle, :func:`check_bundle` of that bundle (raises
    :class:`BundleIntegrityError`)."""
    sys.dont_write_bytecode = True
    root = bundle_root_of(package_dir)
    outer = os.path.realpath(os.path.dirname(os.path.abspath(package_dir)))
    sys.path[:] = [p for p in sys.path if not banned_path(p, outer, root is not None)]
    install_source_loader(package_dir)
    if root is not None and os.path.realpath(root) not in _VERIFIED:
        check_bundle(root)
    return root


def banned_path(entry, outer, in_bundle):
    """Whether a ``sys.path`` entry is the folder holding engines/ (or, in a bundle, anything inside it)."""
    path = os.path.realpath(entry or os.curdir)
    return path == outer or (in_bundle and path.startswith(outer.rstrip(os.sep) + os.sep))


def deploy_refusal_status(argv, message, exit_code=2):
    """``deploy`` promises a status file on every exit: when the bootstrap refuses the bundle, before any of its
    code runs, write the failure (``failed_step`` "bundle") where ``deploy`` would, unless that path is
    manifest.json or a listed bundle file. Returns the path written, or None."""
    import time

    if not argv or argv[0] != "deploy":
        return None
    status_file, bundle, rest = None, None, list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg == "--status-file" and rest:
            status_file = rest.pop(0)
        elif arg.startswith("--status-file="):
            status_file = arg.split("=", 1)[1]
        elif not arg.startswith("-") and bundle is None:
            bundle = arg
    if bundle is None:
        return None
    path = status_file or os.path.join(bundle, "deploy-status.json")
    try:
        listed = read_manifest(bundle)[0].get("files", {})
    except (BundleIntegrityError, AttributeError):
        listed = {}
    real, root = os.path.realpath(path), os.path.realpath(bundle)
    rel = os.path.relpath(real, root).replace(os.sep, "/")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {"schema": "snp-edge-deploy/1", "bundle": os.path.abspath(bundle), "status": "failed",
              "exit_code": exit_code, "failed_step": "bundle", "error": message, "engine": None,
              "steps": [{"name": "bundle", "ok": False, "error": message}], "started": now, "finished": now,
              "env": None}
    if "--json" in argv:  # --json prints the status on failure too (the last line of stdout)
        sys.stdout.write(json.dumps(status, sort_keys=True) + "\n")
        sys.stdout.flush()
    if rel == MANIFEST_NAME or (isinstance(listed, dict) and rel in listed) or os.path.isdir(path):
        return None
    tmp = "{}.tmp-{}.partial".format(os.path.join(os.path.dirname(os.path.abspath(path)),
                                                  "." + os.path.basename(path)), os.getpid())
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(status, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        return None
    return path
