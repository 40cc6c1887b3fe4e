"""The one command runner (engines/common/runner.py): ``snp-edge`` and ``python3 -m engines`` map every exception to the
same exit status and message, through one table."""

from __future__ import annotations

import argparse
import errno
import signal

import pytest
from snp_edge.engines import cli as device_cli
from snp_edge.engines.common.errors import MissingPrerequisite, PowerModeError, VerificationFailed
from snp_edge.engines.common.runner import Terminated, describe_failure, failure_line, run_command

from snp_edge.cli import run_parsed

CASES = [
    (VerificationFailed("parity failed"), 1, "parity failed"),
    (MissingPrerequisite("no TensorRT"), 3, "no TensorRT"),
    (PowerModeError("sudo -n refused"), 4, "sudo -n refused"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/x"), 3, "/out/x: No space left on device"),
    (OSError(errno.ENOENT, "No such file or directory", "/gone"), 2, "/gone: No such file or directory"),
    (MemoryError(), 3, "out of memory"),
    (RuntimeError("internal\nsecond line"), 2, "unexpected RuntimeError: internal (set SNP_EDGE_DEBUG=1"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (Terminated(), 143, "terminated"),
]


def _raise(exc):
    def func(args):
        raise exc

    return func


@pytest.mark.parametrize("exc, status, message", CASES, ids=[type(c[0]).__name__ + str(c[1]) for c in CASES])
def test_both_command_lines_give_the_same_status_and_message(capsys, exc, status, message):
    assert describe_failure(exc)[0] == status and describe_failure(exc)[1].startswith(message)
    host = run_parsed(argparse.Namespace(command="cmd", func=_raise(exc)))
    host_err = capsys.readouterr().err.splitlines()
    device = run_command(_raise(exc), argparse.Namespace())
    device_err = capsys.readouterr().err.splitlines()
    assert host == device == status
    assert len(host_err) == len(device_err) == 1, (host_err, device_err)
    signalled = status in (130, 143)
    assert host_err[0].startswith("snp-edge cmd: " + ("" if signalled else "error: ") + message), host_err
    assert device_err[0].startswith("error: " + message), device_err


def test_device_main_runs_through_the_shared_runner(capsys, monkeypatch):
    monkeypatch.setitem(device_cli.COMMANDS, "info", _raise(RuntimeError("boom")))
    assert device_cli.main(["info", "somewhere"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: unexpected RuntimeError: boom (set SNP_EDGE_DEBUG=1 for the traceback)"]


def test_sigterm_unwinds_and_a_second_one_is_ignored_during_cleanup(capsys):
    before = signal.getsignal(signal.SIGTERM)

    def func(args):
        try:
            signal.raise_signal(signal.SIGTERM)
        finally:
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # clean-up cannot be cut short
            signal.raise_signal(signal.SIGTERM)
        return 0

    assert run_command(func, None, label="snp-edge cmd") == 143
    assert capsys.readouterr().err == "snp-edge cmd: terminated\n"
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is restored


@pytest.mark.parametrize("signum, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_a_failure_after_a_swallowed_signal_is_the_signal(capsys, signum, status, word):
    """A library that catches the KeyboardInterrupt (torch does when Ctrl-C lands inside numpy's import) and fails
    later with another exception: the command still ends as interrupted, not as an unexpected error."""
    def func(args):
        try:
            signal.raise_signal(signum)
        except BaseException:  # noqa: B036 (what the library does)
            pass
        raise ImportError("cannot load module more than once per process")

    before = signal.getsignal(signal.SIGINT)
    assert run_command(func, None, label="snp-edge cmd") == status
    assert capsys.readouterr().err == f"snp-edge cmd: {word}\n"
    assert signal.getsignal(signal.SIGINT) == before  # the handler is restored
    assert run_command(_raise(ImportError("x")), None) == 2  # the next command starts with no signal recorded
    assert "unexpected ImportError" in capsys.readouterr().err


def test_system_exit_passes_through():
    with pytest.raises(SystemExit):
        run_command(_raise(SystemExit(2)), None)


def test_a_long_message_keeps_its_reason():
    """A message longer than the limit loses its middle (a long path), not the reason at its end."""
    from snp_edge.engines.common.errors import first_line

    message = "cannot write /" + "d/" * 300 + "x: its name is 256 bytes long\nsecond line"
    line = first_line(RuntimeError(message), 120)
    assert len(line) == 120 and line.startswith("cannot write /d/") and line.endswith("its name is 256 bytes long")
    assert "..." in line and "second line" not in line
    assert first_line(RuntimeError("short"), 120) == "short"


def test_failure_line_formats():
    assert failure_line(2, "bad", "") == "error: bad"
    assert failure_line(2, "bad", "snp-edge prune") == "snp-edge prune: error: bad"
    assert failure_line(130, "interrupted", "snp-edge prune") == "snp-edge prune: interrupted"
