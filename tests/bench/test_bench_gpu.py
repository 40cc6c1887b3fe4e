"""ONNX Runtime's CUDA execution provider (skipped where absent)."""

import json

import onnxruntime as ort
import pytest

HAS_ORT_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_ORT_CUDA, reason="needs onnxruntime-gpu with a CUDA GPU")
def test_ort_cuda(cli, tmp_path, onnx_pair):
    rc, _, err = cli("bench", *onnx_pair, "--device", "cuda", "--batch", 4, "--quick", "--out", tmp_path)
    assert rc == 0, err
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["candidates"][0]["settings"]["providers"][0] == "CUDAExecutionProvider"

