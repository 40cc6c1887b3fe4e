"""`snp-edge profile --backend ort --precision int8`: every part and whole-model probe quantised with ONNX
Runtime's Q/DQ placement (bench/profile_int8.py). With the old placement (attention MatMuls and softmax
quantised too) the 32 px smoke table was refused by its own check (calibration factor 11.8 > 5): the parts
and the whole model must now agree within the table's calibration range."""

from __future__ import annotations

import pytest
from snp_edge.engines.latency_table import FACTOR_RANGE, read_table

from snp_edge.cli import main


@pytest.mark.slow
def test_int8_latency_table_smoke_is_accepted(tmp_path, capsys):
    out = tmp_path / "t8.json"
    code = main(["profile", "--model", "deit_tiny_patch16_224", "--model-arg", "img_size=32", "--model-arg", "depth=3",
                 "--points", "2", "--warmup", "1", "--runs", "3", "--precision", "int8", "--threads", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err[-2000:]
    doc = read_table(str(out))  # the table's own checks, calibration factor included
    assert doc["precision"] == "int8" and doc["backend"] == "ort" and not doc["partial"]
    assert FACTOR_RANGE[0] <= doc["calibration"]["factor"] <= FACTOR_RANGE[1]  # 1.09 measured here


def test_int8_table_needs_onnx_runtime(tmp_path, capsys):
    code = main(["profile", "--model", "deit_tiny_patch16_224", "--backend", "torch", "--precision", "int8",
                 "--out", str(tmp_path / "t.json")])
    assert code == 2 and "--precision int8 with --backend torch" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
