"""Tiny timm ViTs (32x32 input, 2 blocks) and their ONNX exports, for the bench tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import timm
import torch

TINY_ARGS = {"img_size": 32, "patch_size": 8, "depth": 2, "num_classes": 10}


def tiny_vit(embed_dim: int = 192) -> torch.nn.Module:
    """vit_tiny_patch16_224 at 32x32, two blocks, unfused attention (explicit MatMul/Softmax/MatMul)."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", embed_dim=embed_dim, num_heads=3, **TINY_ARGS).eval()
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    return model


def export(model: torch.nn.Module, path: Path, dynamic_batch: bool = True) -> Path:
    """ONNX opset 13, input ``input`` (dynamic batch unless ``dynamic_batch`` is False), output ``logits``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 3, 32, 32), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}} if dynamic_batch else None)
    return path
