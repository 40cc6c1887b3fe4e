"""How the command line reports what goes wrong: the exit status per kind of failure (README "Bad input and exit
statuses"), one line each, progress bars ended first."""

from __future__ import annotations

import argparse
import errno
import warnings

import pytest
from snp_edge.engines.common.errors import MissingPrerequisite, VerificationFailed

from snp_edge.cli import run_parsed
from snp_edge.errors import SnpEdgeError, SnpEdgeWarning

from .conftest import Result, assert_one_line_error


def _raise(exc):
    def func(args):
        raise exc

    return func


@pytest.mark.parametrize("exc, status, message", [
    (SnpEdgeError("bad input"), 2, "error: bad input"),
    (VerificationFailed("parity failed"), 1, "error: parity failed"),
    (MissingPrerequisite("no TensorRT"), 3, "error: no TensorRT"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/model.onnx"), 3,
     "error: /out/model.onnx: No space left on device"),
    (OSError(errno.ENOENT, "No such file or directory", "/gone"), 2, "error: /gone: No such file or directory"),
    (MemoryError(), 3, "error: out of memory"),
    (KeyboardInterrupt(), 130, "snp-edge cmd: interrupted"),
], ids=["user", "verify", "prerequisite", "disk-full", "vanished", "memory", "ctrl-c"])
def test_exit_status_per_failure(capsys, exc, status, message):
    rc = run_parsed(argparse.Namespace(command="cmd", func=_raise(exc)))
    out, err = capsys.readouterr()
    assert_one_line_error(Result(rc, out, err), status, message, "cmd")


def test_warning_is_one_line(capsys):
    def func(args):
        warnings.warn(SnpEdgeWarning("odd but valid\nsecond line"), stacklevel=2)
        return 0

    assert run_parsed(argparse.Namespace(command="cmd", func=func)) == 0
    assert capsys.readouterr().err == "snp-edge cmd: warning: odd but valid\n"


def test_open_progress_bar_ends_its_line_before_the_error(capsys):
    """A bar still drawing when the error comes (the loop body failed): its line is ended first."""
    from snp_edge.progress import bar

    def func(args):
        b = bar(total=10, desc="work")
        b.update(3)
        raise SnpEdgeError("it broke")

    rc = run_parsed(argparse.Namespace(command="cmd", func=func))
    out, err = capsys.readouterr()
    assert_one_line_error(Result(rc, out, err), 2, "it broke", "cmd")
    assert "work:" in err and err.endswith("\nsnp-edge cmd: error: it broke\n")
