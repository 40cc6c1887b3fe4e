"""Pruning nothing must reproduce the original model's logits (max abs diff < 1e-5)."""

from __future__ import annotations

import pytest
import torch

from snp_edge.arch import arch_of
from snp_edge.criteria import COMPONENTS, CRITERIA, ScoreOptions
from snp_edge.models import load_model
from snp_edge.surgery import prune_model


def _identity_diff(handle, criterion: str, inputs: torch.Tensor) -> float:
    pruned = prune_model(handle, arch_of(handle.model), None, ScoreOptions(dict.fromkeys(COMPONENTS, criterion)))
    with torch.no_grad():
        return (pruned.model(inputs) - handle.model(inputs)).abs().max().item()


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "deit_small_patch16_224",
                                  "deit_tiny_distilled_patch16_224", "deit_small_distilled_patch16_224"])
@pytest.mark.slow
def test_identity_full_size(name):
    handle = load_model(name, "random")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    assert _identity_diff(handle, "snp", x) < 1e-5


@pytest.mark.parametrize("criterion", CRITERIA)
def test_identity_every_criterion(tiny_handle, tiny_inputs, criterion):
    assert _identity_diff(tiny_handle, criterion, tiny_inputs) < 1e-5


@pytest.mark.parametrize("name", ["deit3_small_patch16_224", "vit_small_patch14_reg4_dinov2",
                                  "vit_small_patch16_224"])
def test_identity_vit_variants(name):
    """LayerScale and no_embed_class (DeiT-III), register tokens (DINOv2), plain ViT."""
    handle = load_model(name, "random", {"img_size": 56, "depth": 2})
    x = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    assert _identity_diff(handle, "l1", x) < 1e-5
