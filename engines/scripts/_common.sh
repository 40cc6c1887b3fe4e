# shellcheck shell=bash
# Shared by the stage scripts (sourced, not run). Run them from anywhere: they work on the bundle they are in.
# Every stage runs the bundle's own device code through the isolated launcher
#     python3 -I -B BUNDLE/engines/__main__.py COMMAND BUNDLE ...
# (-I: no current folder, no script folder on the import path, so nothing unlisted in the bundle can be
# imported; -B: no byte code written; the launcher checks the whole bundle, from source, before anything
# else of it is imported). Flags go to the command as they
# are; --max-perf / --no-prompt are handled there (power mode set with sudo -n, restored on exit).
# Exit statuses are the command's: 0 ok, 1 verification failed, 2 bad input, 3 missing prerequisite,
# 4 power mode / sudo, 130 interrupted, 143 terminated.
# The script execs Python (no shell stays behind): a signal to the script's PID (kill -TERM, a supervisor,
# `timeout`) reaches Python itself, which stops its children (tegrastats, trtexec) and removes staged files.
# PYTHON=/path/to/python3 picks the interpreter (default: python3 on PATH), e.g. a venv's.

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || exit 2
PYTHON="${PYTHON:-python3}"
export PYTHONDONTWRITEBYTECODE=1

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

engines() {
    command -v "$PYTHON" >/dev/null 2>&1 || { log "error: $PYTHON not found (the device code needs Python 3.6+)"; exit 3; }
    log "$PYTHON -I -B engines/__main__.py $*"
    exec "$PYTHON" -I -B "$BUNDLE/engines/__main__.py" "$@"
}
