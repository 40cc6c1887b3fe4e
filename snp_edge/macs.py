"""Multiply-accumulate counts (MACs): measured with torch's FLOP counter, and predicted from an Arch.

GMACs here are what the DeiT and SNP papers call GFLOPs (DeiT-S = 4.6): matrix products only
(patch embedding, every Linear, the two attention MatMuls, the classifier); norms, softmax and
activations are not counted.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .arch import Arch
from .sublayers import attention_kept


@torch.no_grad()
def count_macs(model: nn.Module, batch: int = 1) -> int:
    """MACs of one forward pass of ``model`` on ``batch`` images, counted by torch's FlopCounterMode."""
    pe = model.patch_embed
    x = torch.zeros(batch, pe.proj.in_channels, *pe.img_size)
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def block_macs(embed: int, block, tokens: int) -> int:
    """MACs of one transformer block of widths ``block`` (a BlockArch) on a residual width ``embed``; a removed
    sublayer (:mod:`snp_edge.sublayers`: 0 heads or a value width of 0, FFN width 0) counts nothing."""
    E, N, H = embed, tokens, block.heads
    attn = (N * E * H * (2 * block.qk + block.v)  # qkv
            + N * N * H * (block.qk + block.v)  # q @ k^T and attn @ v
            + N * H * block.v * E)  # proj
    return (attn if attention_kept(block) else 0) + 2 * N * E * block.mlp  # fc1 + fc2


def predict_macs(arch: Arch, tokens: int, patch_macs_per_channel: int, head_outputs: int) -> int:
    """MACs of a ViT of shape ``arch`` for one image, from its widths alone (used by the width search).

    Args:
        tokens: sequence length N (patches + class/distillation/register tokens).
        patch_macs_per_channel: patch-embedding MACs per output channel (patches * in_chans * p * p).
        head_outputs: classifier outputs per image summed over heads (num_classes, x2 for distilled).
    """
    E = arch.embed
    return patch_macs_per_channel * E + E * head_outputs + sum(block_macs(E, b, tokens) for b in arch.blocks)


def macs_constants(model: nn.Module) -> dict:
    """The arch-independent terms :func:`predict_macs` needs, read off a timm ViT."""
    pe = model.patch_embed
    kernel = pe.proj.kernel_size[0] * pe.proj.kernel_size[1]
    heads = 2 if getattr(model, "head_dist", None) is not None and isinstance(model.head_dist, nn.Linear) else 1
    classes = model.num_classes if isinstance(model.head, nn.Linear) else 0
    return {
        "tokens": pe.num_patches + model.num_prefix_tokens,
        "patch_macs_per_channel": pe.num_patches * pe.proj.in_channels * kernel,
        "head_outputs": classes * heads,
    }
