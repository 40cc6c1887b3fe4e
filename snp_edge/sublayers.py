"""Sublayers pruned to zero width: a transformer block whose attention or FFN branch is removed as a whole.

SNP can cut a group to nothing where the measured loss says it is free (issue 21): an FFN of width 0 or a
block with 0 heads. Such a branch contributes nothing to the residual stream, not even its output bias, so
the block skips it: no norm, no Linear kernels, no residual add, nothing in the state_dict, the MAC count
(:mod:`snp_edge.macs`) or an ONNX export. :class:`SublayerBlock` is timm's pre-norm ``Block`` with the removed
branch's modules set to ``None``; it is what :func:`snp_edge.arch.apply_arch` builds for such widths.

In an :class:`~snp_edge.arch.Arch` the attention is removed when a block keeps 0 heads (saved with 0 query/key
and value widths too); the allocator's intermediate widths may instead carry a value width of 0
(:func:`attention_kept`), which :func:`snp_edge.arch.canonical` turns into 0 heads.
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from .errors import SnpEdgeError

ATTN_MODULES = ("norm1", "attn", "ls1", "drop_path1")  # the attention branch of a timm Block
MLP_MODULES = ("norm2", "mlp", "ls2", "drop_path2")  # the FFN branch


def attention_kept(block) -> bool:
    """Whether a BlockArch's attention branch exists (heads, query/key and value widths all above 0)."""
    return min(block.heads, block.qk, block.v) > 0


def mlp_kept(block) -> bool:
    """Whether a BlockArch's FFN branch exists (width above 0)."""
    return block.mlp > 0


class SublayerBlock(Block):
    """A timm pre-norm ``Block`` whose attention and/or FFN branch may be removed (its modules ``None``).

    ``x`` (B, N, E) or token-major (B*N, E) -> the same shape: ``x + attn branch`` (when kept), then
    ``+ FFN branch`` (when kept); a removed branch adds nothing."""

    @classmethod
    def of(cls, block: Block, attn: bool = True, mlp: bool = True) -> SublayerBlock:
        """``block`` itself, made a SublayerBlock with the branches not kept removed."""
        block.__class__ = cls
        for kept, names in ((attn, ATTN_MODULES), (mlp, MLP_MODULES)):
            if not kept:
                for name in names:
                    setattr(block, name, None)
        return block

    @property
    def has_attn(self) -> bool:
        return self.attn is not None

    @property
    def has_mlp(self) -> bool:
        return self.mlp is not None

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if self.attn is not None:
            x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), attn_mask=attn_mask, is_causal=is_causal)))
        if self.mlp is not None:
            x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x

    def extra_repr(self) -> str:
        removed = [name for name, kept in (("attention", self.has_attn), ("FFN", self.has_mlp)) if not kept]
        return f"removed: {', '.join(removed)}" if removed else ""


def removed_sublayers(model: nn.Module) -> list[str]:
    """``blocks.3.mlp``-style names of the branches removed in ``model`` (empty for a timm model)."""
    return [f"blocks.{i}.{name}" for i, blk in enumerate(model.blocks) for name in ("attn", "mlp")
            if getattr(blk, name, True) is None]


def drop_removed(state: dict[str, torch.Tensor], blocks) -> dict[str, torch.Tensor]:
    """``state`` (blocks numbered by position) without the parameters of the branches ``blocks`` (BlockArchs,
    in order) remove."""
    gone = []
    for j, b in enumerate(blocks):
        gone += [f"blocks.{j}.{name}." for name in ATTN_MODULES if not attention_kept(b)]
        gone += [f"blocks.{j}.{name}." for name in MLP_MODULES if not mlp_kept(b)]
    return {k: v for k, v in state.items() if not k.startswith(tuple(gone))}


def check_prunable(model: nn.Module) -> None:
    """Refuse to score or cut again a model with removed sublayers (the criteria and the groups read every
    block's attention and FFN)."""
    removed = removed_sublayers(model)
    if removed:
        raise SnpEdgeError(f"this pruned model has sublayers removed ({', '.join(removed[:3])}"
                           f"{', ...' if len(removed) > 3 else ''}); it cannot be pruned again: prune the unpruned "
                           "base model to the final budget instead")
