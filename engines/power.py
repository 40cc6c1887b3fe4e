"""The Jetson power mode around a command: report it, or set the module's fastest mode + maximum clocks and
restore both after.

:func:`power_session` is a context manager. Without ``max_perf`` it only reports (and, on a terminal with
``prompt``, asks whether to switch). With ``max_perf``, on a machine with ``nvpmodel``::

    sudo -n jetson_clocks --store FILE      the current clocks
    sudo -n nvpmodel -m <fastest id>        MAXN on a Nano / AGX Orin / Orin NX (0), MAXN_SUPER or 15W on an
                                            Orin Nano: the module's own table (:mod:`.power_modes`)
    sudo -n jetson_clocks                   maximum clocks
    ... the command ...
    sudo -n nvpmodel -m <previous id>       always, also after a failure, Ctrl-C or SIGTERM
    sudo -n jetson_clocks --restore FILE

``sudo -n`` never prompts: where sudo needs a password, or any step fails, :class:`PowerModeError` (exit
status 4) says which. Inside a container there is no nvpmodel: docker/run-jetson.sh does this on the host.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

from . import envinfo, power_modes
from .common.errors import PowerModeError, first_line


def _sudo(args):
    """Run ``sudo -n ARGS``; :class:`PowerModeError` with sudo's or the tool's message on failure."""
    try:
        res = subprocess.run(["sudo", "-n"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PowerModeError("cannot run sudo -n {}: {}".format(" ".join(args), first_line(exc))) from None
    if res.returncode != 0:
        text = " ".join((res.stdout or "").split()) or "exit status {}".format(res.returncode)
        hint = " (allow it without a password in sudoers, or run without --max-perf)" \
            if "password" in text.lower() else ""
        raise PowerModeError("sudo -n {} failed: {}{}".format(" ".join(args), text[:200], hint))
    return res.stdout


def _ask(question):
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


@contextlib.contextmanager
def power_session(max_perf=False, prompt=True, log=None):
    """Yield a record ``{mode_before, fastest, max_perf, restored}``; see the module docstring."""
    log = log or (lambda text: print(text, file=sys.stderr))
    mode = envinfo.power_mode()
    modes = power_modes.power_modes()
    best = modes["fastest"]
    record = {"mode_before": mode, "fastest": best, "max_perf": False, "restored": None}
    if shutil.which("nvpmodel") is None:
        if max_perf:
            raise PowerModeError("--max-perf: nvpmodel not found (not a Jetson, or inside a container: use "
                                 "docker/run-jetson.sh --max-perf on the host)")
        yield record
        return
    if not max_perf and mode and not power_modes.is_fastest(mode, modes):
        if prompt and sys.stdin.isatty():
            max_perf = _ask("Jetson power mode {}: timings will be slower and noisier. Set {} + jetson_clocks "
                            "for this command (sudo)? [y/N] ".format(mode["mode"], best["mode"]))
        else:
            log("Jetson power mode {} (this module's fastest: {}, id {}): pass --max-perf to set it + "
                "jetson_clocks".format(mode["mode"], best["mode"], best["id"]))
    if not max_perf:
        yield record
        return
    folder = tempfile.mkdtemp(prefix="snp-edge-clocks-")
    store = os.path.join(folder, "clocks.conf")
    try:
        _sudo(["jetson_clocks", "--store", store])
        log("setting {} (nvpmodel -m {}) and maximum clocks (jetson_clocks); restored afterwards".format(
            best["mode"], best["id"]))
        record["max_perf"] = True
        try:
            _sudo(["nvpmodel", "-m", str(best["id"])])
            _sudo(["jetson_clocks"])
            yield record
        finally:
            failure = sys.exc_info()[1]
            errors = []
            if mode and mode.get("id") is not None:
                try:
                    _sudo(["nvpmodel", "-m", str(mode["id"])])
                except PowerModeError as exc:
                    errors.append(str(exc))
            try:
                _sudo(["jetson_clocks", "--restore", store])
            except PowerModeError as exc:
                errors.append(str(exc))
            record["restored"] = not errors
            if errors and failure is None:
                raise PowerModeError("restoring the power mode: " + errors[0])
            if errors:
                log("error: restoring the power mode: " + errors[0])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
