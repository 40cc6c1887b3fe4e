"""An export copy of a ViT: every attention as :class:`PrunedAttention`, softmax scale folded into W_Q.

Unpruned timm models (the DeiT-S and DeiT-Tiny baselines) go through the same path, so baseline and
pruned graphs differ only in their widths.
"""

from __future__ import annotations

import copy
import types

import torch
from torch import nn

from snp_edge.attention import PrunedAttention


def as_pruned_attention(attn: nn.Module) -> PrunedAttention:
    """timm ``Attention`` -> an equal :class:`PrunedAttention` (same weights, same row layout)."""
    if isinstance(attn, PrunedAttention):
        return attn
    dim = attn.qkv.in_features
    new = PrunedAttention(dim, attn.num_heads, attn.head_dim, attn.head_dim, attn.scale,
                          qkv_bias=attn.qkv.bias is not None, proj_bias=attn.proj.bias is not None)
    new.load_state_dict({k: v for k, v in attn.state_dict().items() if k.startswith(("qkv.", "proj."))})
    return new


@torch.no_grad()
def fold_softmax_scale(attn: PrunedAttention) -> None:
    """Multiply the query rows of qkv by the softmax scale and set the scale to 1 (one Mul less per block).

    For head widths that are powers of 4 (64 -> 1/8) the scale is a power of two and the fold is exact.
    """
    rows = attn.num_heads * attn.qk_dim
    attn.qkv.weight[:rows] *= attn.scale
    if attn.qkv.bias is not None:
        attn.qkv.bias[:rows] *= attn.scale
    attn.scale = 1.0


def _token_major_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ViT forward with the residual stream as (B*N, D) through the blocks.

    Every Linear then sees a 2-D input and exports as one Gemm with its bias fused, instead of
    MatMul + Add; attention reshapes to (B, H, N, d) internally. Same maths as ``forward``.
    """
    x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))
    tokens, dim = x.shape[1], x.shape[2]
    x = self.blocks(x.reshape(-1, dim))
    x = self.norm(x).reshape(-1, tokens, dim)
    return self.forward_head(x)


def export_copy(model: nn.Module, token_major: bool = True) -> nn.Module:
    """A deep copy of ``model`` ready for ``torch.onnx.export`` (eval mode; the original is untouched)."""
    model = copy.deepcopy(model).eval()
    tokens = model.patch_embed.num_patches + model.num_prefix_tokens
    for blk in model.blocks:
        if blk.attn is None:  # attention removed (snp_edge.sublayers): nothing to export
            continue
        blk.attn = as_pruned_attention(blk.attn)
        fold_softmax_scale(blk.attn)
        blk.attn.tokens = tokens
    if token_major:
        model.forward = types.MethodType(_token_major_forward, model)
    return model
