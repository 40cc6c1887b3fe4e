"""Self-attention whose query/key width and value width are set independently, as SNP leaves them.

Unlike timm's ``Attention`` (one ``head_dim`` shared by Q, K and V), a pruned block keeps ``qk_dim``
query/key neurons and ``v_dim`` value neurons per head. The softmax scale stays that of the unpruned
model, so the attention scores keep the magnitude the network was trained with.
"""

from __future__ import annotations

import torch
from torch import nn


class PrunedAttention(nn.Module):
    """Multi-head self-attention with per-head Q/K width ``qk_dim`` and V width ``v_dim``.

    The fused ``qkv`` projection keeps timm's row layout, ``[q heads | k heads | v heads]``, head-major:
    its weight is ``(num_heads * (2 * qk_dim + v_dim), dim)``; ``proj`` maps ``num_heads * v_dim`` -> ``dim``.
    Attention is written as explicit MatMul/Softmax/MatMul so it exports to ONNX opset 13.

    Args:
        dim: residual (embedding) width D.
        num_heads: heads H kept in this block.
        qk_dim: query/key width per head.
        v_dim: value width per head.
        scale: softmax scale, ``original_head_dim ** -0.5``.
    """

    def __init__(self, dim: int, num_heads: int, qk_dim: int, v_dim: int, scale: float,
                 qkv_bias: bool = True, proj_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qk_dim = qk_dim
        self.v_dim = v_dim
        self.scale = scale
        self.tokens: int | None = None  # static sequence length, set for export: fewer shape ops in ONNX
        self.qkv = nn.Linear(dim, num_heads * (2 * qk_dim + v_dim), bias=qkv_bias)
        self.proj = nn.Linear(num_heads * v_dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        """x: (B, N, D) -> (B, N, D), or token-major (B*N, D) -> (B*N, D) when :attr:`tokens` is set.

        Masks are not supported (ViT classifiers use none).
        """
        if attn_mask is not None or is_causal:
            raise NotImplementedError("PrunedAttention does not take attention masks")
        N = self.tokens or x.shape[1]
        H, dqk, dv = self.num_heads, self.qk_dim, self.v_dim
        q, k, v = self.qkv(x).split([H * dqk, H * dqk, H * dv], dim=-1)
        q = q.reshape(-1, N, H, dqk).transpose(1, 2)  # (B, H, N, dqk)
        if self.scale != 1.0:  # export folds the scale into the query weights
            q = q * self.scale
        k = k.reshape(-1, N, H, dqk).permute(0, 2, 3, 1)  # (B, H, dqk, N)
        v = v.reshape(-1, N, H, dv).transpose(1, 2)  # (B, H, N, dv)
        attn = (q @ k).softmax(dim=-1)  # (B, H, N, N)
        out = (attn @ v).transpose(1, 2)  # (B, N, H, dv)
        out = out.reshape(-1, H * dv) if x.dim() == 2 else out.reshape(-1, N, H * dv)
        return self.proj(out)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, qk_dim={self.qk_dim}, v_dim={self.v_dim}, scale={self.scale:.6g}"


def attn_layout(attn: nn.Module) -> tuple[int, int, int]:
    """(heads, query/key width per head, value width per head) of a timm ``Attention`` or a
    :class:`PrunedAttention`."""
    if isinstance(attn, PrunedAttention):
        return attn.num_heads, attn.qk_dim, attn.v_dim
    return attn.num_heads, attn.head_dim, attn.head_dim


def split_qkv(attn: nn.Module, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused qkv Linear's output (B, N, H * (2 * d_qk + d_v)) -> q, k (B, H, N, d_qk) and v (B, H, N, d_v),
    unscaled."""
    B, N, _ = out.shape
    H, dqk, dv = attn_layout(attn)
    q, k, v = out.split([H * dqk, H * dqk, H * dv], dim=-1)
    return (q.reshape(B, N, H, dqk).transpose(1, 2), k.reshape(B, N, H, dqk).transpose(1, 2),
            v.reshape(B, N, H, dv).transpose(1, 2))
