"""Writing outputs safely: the one home of atomic writes and of publishing a finished file or folder.

Everything a command writes goes to a uniquely named hidden sibling of its destination first and is renamed
into place only when complete, so an interrupted, failed or concurrent run never leaves a partial file.
Files get the permissions the user's umask gives (0644 / 0755 by default), not mkstemp's 0600.

* :func:`write_bytes_atomic`, :func:`write_text_atomic`, :func:`write_json_atomic`: small files;
  :func:`read_json`: reading them back, every failure one line naming the file.
* :func:`atomic_path`: a temporary path for writers that want a file name (``np.save``, ``onnx.save``);
  :func:`scratch_dir`: a temporary folder beside an output, always removed.
* :class:`Output`: an output file or folder of a command: checked before any work starts (exists without
  ``--force``, parent missing or not writable, name too long, wrong kind, the current folder), staged, then
  published with :meth:`Output.publish` (umask permissions for the whole tree), restoring what it replaced
  if the rename fails.

Temporary names are ``.NAME.tmp-XXXXXXXX.{partial,scratch,old}`` beside the output (same file system, so
renames are atomic), with NAME shortened when needed so that any legal output name works.
"""

import contextlib
import json
import os
import shutil
import stat
import tempfile

from .errors import UserError, first_line
from .signals import raise_if_received

NAME_MAX = 255  # bytes in one file name (Linux, macOS)
_TMP_TAIL = len(".tmp-") + 8 + len(".scratch")  # ".tmp-" + mkstemp's 8 random characters + the longest suffix
_LIVE = set()  # staging paths of this process, removed by cleanup_staged() on SIGTERM


def current_umask():
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _chmod_default(path, directory=False):
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_prefix(name):
    """``.NAME.tmp-``, with NAME cut short enough that the temporary name fits in :data:`NAME_MAX` bytes (any
    legal output name works; mkstemp's random part keeps the names unique)."""
    room = NAME_MAX - 1 - _TMP_TAIL
    short = name.encode("utf-8")[:room].decode("utf-8", "ignore")
    return "." + short + ".tmp-"


def _tmp_sibling(path, directory=False, suffix=".partial"):
    parent = os.path.dirname(os.path.abspath(path))
    prefix = _tmp_prefix(os.path.basename(path))
    if directory:
        tmp = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent)
        _chmod_default(tmp, directory=True)
        return tmp
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=parent)
    os.close(fd)
    return tmp


@contextlib.contextmanager
def atomic_path(path, fsync=True):
    """Yield a temporary sibling path of ``path``; on success it is synced, given umask permissions and
    renamed to ``path``; on an exception it is removed. Creates the parent folder."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = _tmp_sibling(path)
    _LIVE.add(tmp)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        _chmod_default(tmp)
        raise_if_received()
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(parent)
    finally:
        _LIVE.discard(tmp)
        if os.path.lexists(tmp):
            os.unlink(tmp)


def read_json(path, error=UserError, max_bytes=64 << 20):
    """The JSON document in ``path``; ``error`` (an exception class) names the file when it is unreadable, too
    large, not JSON, or nested too deeply for the parser."""
    try:
        if os.path.getsize(path) > max_bytes:
            raise error(f"{path}: larger than {max_bytes >> 20} MiB; not a file this tool writes")
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({first_line(exc)})") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None


def write_bytes_atomic(path, data, fsync=True):
    """Write ``data`` (bytes) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, fsync) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text_atomic(path, text, fsync=True):
    write_bytes_atomic(path, text.encode("utf-8"), fsync)


def write_json_atomic(path, obj, sort_keys=True, fsync=True):
    """Write ``obj`` as indented JSON (keys sorted unless ``sort_keys`` is False) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n", fsync)


@contextlib.contextmanager
def scratch_dir(next_to):
    """A hidden temporary folder beside ``next_to`` (same file system), removed on exit whatever happens."""
    tmp = _tmp_sibling(next_to, directory=True, suffix=".scratch")
    _LIVE.add(tmp)
    try:
        yield tmp
    finally:
        _LIVE.discard(tmp)
        _remove(tmp)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def cleanup_staged():
    """Remove every staging path this process still holds (called on SIGTERM before exiting)."""
    for path in list(_LIVE):
        _remove(path)
        _LIVE.discard(path)


class Output(object):
    """One output of a command, a file or a folder, written through a staging sibling.

    ``Output(path, force, kind)`` checks at once, before any work: the destination exists and ``force`` is not
    given; it exists as the other kind (a folder where a file goes); its parent is missing or refuses a new
    entry (tried with a probe folder); its name is too long; it is the current folder or one of its parents.
    A symbolic link at ``path`` is replaced by the output (with ``force``), never followed. :meth:`stage`
    creates the staging sibling (a folder for ``kind="dir"``, a path for ``kind="file"``); :meth:`publish`
    renames it into place, moving an old destination aside first and back if the rename fails. Used as a
    context manager, anything staged and not published is removed on exit.
    """

    def __init__(self, path, force=False, kind="dir"):
        if kind not in ("dir", "file"):
            raise ValueError("kind must be 'dir' or 'file'")
        self.path = os.path.abspath(str(path))
        self.shown = str(path)
        self.force, self.kind = force, kind
        self.staged = None
        self.check()

    def check(self):
        path, shown = self.path, self.shown
        name = os.path.basename(path)
        if not name:
            raise UserError(f"cannot write {shown}: not a file or folder name")
        if len(name.encode("utf-8")) > NAME_MAX:
            raise UserError(f"cannot write {shown}: its name is {len(name.encode('utf-8'))} bytes long; "
                            f"file names hold at most {NAME_MAX}")
        cwd = os.path.abspath(os.getcwd())
        if os.path.lexists(path):
            if not self.force:
                raise UserError(f"output {shown} already exists; pass --force to replace it")
            if cwd == path or cwd.startswith(path.rstrip(os.sep) + os.sep):
                raise UserError(f"refusing to replace {shown}: it is the current folder or holds it")
            is_dir = os.path.isdir(path) and not os.path.islink(path)
            if self.kind == "file" and is_dir:
                raise UserError(f"output {shown} is a folder; give a file path (--force replaces files only)")
            if self.kind == "dir" and not is_dir and not os.path.islink(path):
                raise UserError(f"output {shown} is a file; give a folder path (--force replaces folders only)")
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise UserError(f"cannot write {shown}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise UserError(f"cannot write {shown}: folder {parent} is not writable")
        try:  # what access() cannot tell: /proc, read-only mounts, files systems that refuse new names
            os.rmdir(tempfile.mkdtemp(prefix=_tmp_prefix(name), suffix=".probe", dir=parent))
        except OSError as exc:
            raise UserError(f"cannot write {shown}: {exc.strerror or exc}") from None

    def stage(self):
        """Create the staging sibling and return its path; file-system errors surface here, before work."""
        if self.staged is None:
            try:
                self.staged = _tmp_sibling(self.path, directory=self.kind == "dir")
            except OSError as exc:
                raise UserError(f"cannot write {self.shown}: {exc.strerror or exc}") from None
            _LIVE.add(self.staged)
            if self.kind == "file":
                os.unlink(self.staged)  # writers create the file themselves
        return self.staged

    def publish(self):
        """Rename the staged output to its destination (replacing it only with ``force``). The staged tree
        gets the umask's permissions first (libraries such as safetensors write 0600 files)."""
        if self.staged is None:
            raise RuntimeError("nothing staged")
        if not os.path.lexists(self.staged):
            raise RuntimeError(f"nothing was written to the staging path of {self.shown}")
        apply_umask(self.staged)
        raise_if_received()  # Ctrl-C that a library swallowed: nothing is published
        backup = None
        if os.path.lexists(self.path):
            if not self.force:
                raise UserError(f"output {self.shown} appeared while this command ran; pass --force to replace it")
            backup = _tmp_sibling(self.path, directory=True, suffix=".old")
            os.rmdir(backup)  # a free unique name; the old output is renamed to it
            try:
                os.replace(self.path, backup)
            except OSError as exc:
                raise UserError(f"cannot replace {self.shown}: {exc.strerror or exc}") from None
        try:
            os.replace(self.staged, self.path)
        except BaseException as exc:
            if backup is not None:
                try:
                    os.replace(backup, self.path)
                except OSError:
                    raise UserError(f"cannot write {self.shown} and cannot put its old version back; it is "
                                    f"kept as {backup}") from None
            if isinstance(exc, OSError):
                raise UserError(f"cannot write {self.shown}: {exc.strerror or exc} (did another command "
                                "write it at the same time?)") from None
            raise
        _LIVE.discard(self.staged)
        self.staged = None
        if backup is not None:
            _remove(backup)
        _fsync_dir(os.path.dirname(self.path))
        return self.path

    def discard(self):
        if self.staged is not None:
            _remove(self.staged)
            _LIVE.discard(self.staged)
            self.staged = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False


def apply_umask(path):
    """Give ``path`` and, for a folder, everything in it the permissions a new file gets under the umask:
    0666 & ~umask for files (0777 & ~umask when any execute bit is set) and 0777 & ~umask for folders.
    Symbolic links are left alone."""
    mask = current_umask()

    def fix(p):
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            return
        full = 0o777 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111 else 0o666
        if stat.S_IMODE(st.st_mode) != full & ~mask:
            os.chmod(p, full & ~mask)

    fix(path)
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                fix(os.path.join(root, name))
