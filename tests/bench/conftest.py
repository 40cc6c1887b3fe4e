"""Fixtures of the bench tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.bench_testutils import export, tiny_vit


@pytest.fixture(scope="session")
def onnx_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``wide.onnx`` (embed 192) and ``narrow.onnx`` (embed 96, about a quarter of the MACs)."""
    d = tmp_path_factory.mktemp("onnx")
    return export(tiny_vit(192), d / "wide.onnx"), export(tiny_vit(96), d / "narrow.onnx")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture):
    """Run the snp-edge command line in-process: argv -> (exit status, stdout, stderr)."""
    from snp_edge.cli import main

    def run(*argv: object) -> tuple[int, str, str]:
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return run
