"""`snp-edge run --precision int8` / `compare --precision int8`: an INT8 row (ONNX Runtime's Q/DQ placement)
beside every FP32 row of the benchmark, INT8 bundles for a CPU target, refusals before any model loads."""

from __future__ import annotations

import json

import onnx
import pytest

from snp_edge.cli import main

PRUNED = "deit_tiny_patch16_224 + SNP (cfg.yaml)"


@pytest.mark.slow
def test_run_int8_rows_beside_fp32_and_an_int8_bundle(capsys, tmp_path):
    out = tmp_path / "run"
    code = main(["run", "--model", "deit_tiny_patch16_224", "--model-arg", "img_size=64", "--model-arg", "depth=3",
                 "--weights", "random", "--config", str(_cfg(tmp_path)), "--criterion", "l1", "--references",
                 "--targets", "raspberry-pi-5",
                 "--precision", "int8", "--quick", "--threads", "1", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    results = json.loads((out / "bench" / "results.json").read_text())
    labels = [c["label"] for c in results["candidates"]]
    assert labels == ["deit_tiny_patch16_224", "deit_tiny_patch16_224 INT8", PRUNED, PRUNED + " INT8"]
    int8 = results["candidates"][3]
    assert int8["precision"] == "int8" and int8["fp32_label"] == PRUNED and "precision" not in results["candidates"][2]
    assert int8["quantization"]["quantizer"] == "ort" and int8["quantization"]["gate"] == "skipped"
    assert f"| {PRUNED} INT8 |" in (out / "bench" / "results.md").read_text() and f"{PRUNED} INT8" in stdout
    assert (out / "bench" / "results.png").read_bytes()[:4] == b"\x89PNG"
    q = onnx.load(str(out / "onnx" / "pruned.int8.onnx"))
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) == int8["quantization"]["qdq_nodes"] > 0
    manifest = json.loads((out / "bundles" / "raspberry-pi-5" / "manifest.json").read_text())
    assert manifest["quantization"]["precision"] == "int8" and manifest["quantization"]["quantizer"] == "ort"


def test_int8_refusals_before_any_model_loads(capsys, tmp_path):
    base = ["--model", "deit_tiny_patch16_224", "--weights", "random", "--target-gmacs", "0.05", "--precision", "int8"]
    assert main(["run", *base, "--targets", "jetson-nano", "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "snp-edge run: error: --precision int8: jetson-nano runs fp32, fp16 only (no fast INT8 on its GPU)")
    assert main(["compare", *base, "--backend", "torch", "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "snp-edge compare: error: --precision int8 times ONNX Runtime's CPU int8 kernels: use --backend ort "
        "--device cpu (not --backend torch --device cpu)")
    assert main(["compare", *base[:-1], "fp16", "--out", str(tmp_path / "c")]) == 2
    assert "--precision fp16: the benchmark's FP16 is --fp16" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_compare_int8_rows(capsys, tmp_path):
    code = main(["compare", "--model", "deit_tiny_patch16_224", "--model-arg", "img_size=32", "--model-arg", "depth=3",
                 "--weights", "random", "--config", str(_cfg(tmp_path)), "--criterion", "l1", "--references",
                 "--precision", "int8", "--quick",
                 "--threads", "1", "--out", str(tmp_path / "c")])
    assert code == 0, capsys.readouterr().err
    labels = [c["label"] for c in json.loads((tmp_path / "c" / "results.json").read_text())["candidates"]]
    assert len(labels) == 4 and labels[1] == labels[0] + " INT8" and labels[3] == labels[2] + " INT8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "cfg.yaml"]


def _cfg(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("mlp: 384\n")
    return path
