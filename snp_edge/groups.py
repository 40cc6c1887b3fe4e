"""Dependency groups: which parameter slices lose the same neuron indices together.

Found from the model itself. Every parameter of a supported ViT is either covered by a group along
each prunable dimension or is a fixed dimension (image channels, kernel size, token count, classes);
anything else is an unsupported module and is refused by :func:`check_supported`.

Groups (``kind``):
    ``embed``  the one residual width: patch-embedding output, class/distillation/register tokens,
               position embedding, every LayerNorm on the residual stream, LayerScale, the inputs of
               qkv and fc1, the outputs of proj and fc2, the final norm and the classifier input(s).
    ``qk``     per block and head: query row i and key row i of qkv together (one rank-1 term of S).
    ``v``      per block and head: value row i of qkv and input column i of proj.
    ``mlp``    per block: fc1 output i (and its bias, and an FFN LayerNorm) and fc2 input i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.layers import LayerScale, Mlp, PatchEmbed
from timm.layers.attention import Attention
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from .attention import PrunedAttention, attn_layout
from .errors import SnpEdgeError
from .sublayers import check_prunable


@dataclass(frozen=True)
class Slice:
    """``width`` consecutive indices of parameter ``param`` along ``dim``, starting at ``offset``."""

    param: str
    dim: int
    offset: int
    width: int


@dataclass(frozen=True)
class Group:
    """Parameter slices whose index i is one neuron: they are kept or removed together."""

    name: str  # e.g. "embed", "blocks.3.qk.2", "blocks.3.v.2", "blocks.3.mlp"
    kind: str  # "embed" | "qk" | "v" | "mlp"
    block: int | None  # position in model.blocks, None for embed
    head: int | None
    width: int
    slices: tuple[Slice, ...]


def _unsupported(path: str, module: nn.Module, why: str) -> SnpEdgeError:
    return SnpEdgeError(f"unsupported module {path} ({type(module).__name__}): {why}; "
                        "snp-edge prunes timm VisionTransformer/DeiT models with pre-norm Block, Attention and Mlp")


def check_supported(model: nn.Module) -> None:
    """Raise :class:`SnpEdgeError` naming the first module that SNP surgery cannot handle."""
    if not isinstance(model, VisionTransformer):
        raise _unsupported("<model>", model, "not a timm VisionTransformer")
    if not isinstance(model.patch_embed, PatchEmbed) or getattr(model.patch_embed, "flatten", True) is False:
        raise _unsupported("patch_embed", model.patch_embed, "expected timm PatchEmbed")
    if getattr(model, "attn_pool", None) is not None:
        raise _unsupported("attn_pool", model.attn_pool, "attention pooling heads are not supported")
    if getattr(model, "dynamic_img_size", False):
        raise _unsupported("<model>", model, "dynamic_img_size is not supported")
    if model.pos_embed is None:
        raise _unsupported("pos_embed", model, "models without absolute position embedding are not supported")
    for name in ("norm_pre", "norm", "fc_norm"):
        mod = getattr(model, name)
        if not isinstance(mod, nn.LayerNorm | nn.Identity):
            raise _unsupported(name, mod, "expected LayerNorm")
    check_prunable(model)
    for i, blk in enumerate(model.blocks):
        path = f"blocks.{i}"
        if type(blk) is not Block:
            raise _unsupported(path, blk, "expected timm's pre-norm Block")
        attn = blk.attn
        if isinstance(attn, Attention):
            for sub in ("q_norm", "k_norm", "norm"):
                if not isinstance(getattr(attn, sub), nn.Identity):
                    raise _unsupported(f"{path}.attn.{sub}", getattr(attn, sub), "QK/scale norm is not supported")
            if getattr(attn, "gate", None) is not None:
                raise _unsupported(f"{path}.attn.gate", attn.gate, "gated attention is not supported")
        elif not isinstance(attn, PrunedAttention):
            raise _unsupported(f"{path}.attn", attn, "expected timm Attention")
        if type(blk.mlp) is not Mlp or not isinstance(blk.mlp.fc1, nn.Linear):
            raise _unsupported(f"{path}.mlp", blk.mlp, "expected timm Mlp (fc1, act, fc2)")
        for sub in ("norm1", "norm2"):
            if not isinstance(getattr(blk, sub), nn.LayerNorm):
                raise _unsupported(f"{path}.{sub}", getattr(blk, sub), "expected LayerNorm")
        for sub in ("ls1", "ls2"):
            if not isinstance(getattr(blk, sub), LayerScale | nn.Identity):
                raise _unsupported(f"{path}.{sub}", getattr(blk, sub), "expected LayerScale")
    for name in ("head", "head_dist"):
        mod = getattr(model, name, None)
        if mod is not None and not isinstance(mod, nn.Linear | nn.Identity):
            raise _unsupported(name, mod, "expected a Linear classifier")


def _present(params: dict[str, torch.Tensor], *names: str) -> list[str]:
    return [n for n in names if n in params]


def find_groups(model: nn.Module) -> list[Group]:
    """All dependency groups of ``model``: embed first, then per block qk (per head), v (per head), mlp."""
    check_supported(model)
    params = dict(model.named_parameters())
    E = model.patch_embed.proj.out_channels
    embed: list[Slice] = [Slice("patch_embed.proj.weight", 0, 0, E)]
    embed += [Slice(n, 0, 0, E) for n in _present(params, "patch_embed.proj.bias",
                                                   "patch_embed.norm.weight", "patch_embed.norm.bias")]
    embed += [Slice(n, 2, 0, E) for n in _present(params, "cls_token", "dist_token", "reg_token", "pos_embed")]
    embed += [Slice(n, 0, 0, E) for n in _present(params, "norm_pre.weight", "norm_pre.bias", "norm.weight",
                                                   "norm.bias", "fc_norm.weight", "fc_norm.bias")]
    embed += [Slice(n, 1, 0, E) for n in _present(params, "head.weight", "head_dist.weight")]
    groups: list[Group] = []
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}"
        H, dqk, dv = attn_layout(blk.attn)
        embed += [Slice(n, 0, 0, E) for n in _present(
            params, f"{p}.norm1.weight", f"{p}.norm1.bias", f"{p}.norm2.weight", f"{p}.norm2.bias",
            f"{p}.ls1.gamma", f"{p}.ls2.gamma", f"{p}.attn.proj.bias", f"{p}.mlp.fc2.bias")]
        embed += [Slice(f"{p}.attn.qkv.weight", 1, 0, E), Slice(f"{p}.mlp.fc1.weight", 1, 0, E),
                  Slice(f"{p}.attn.proj.weight", 0, 0, E), Slice(f"{p}.mlp.fc2.weight", 0, 0, E)]
        qkv = _present(params, f"{p}.attn.qkv.weight", f"{p}.attn.qkv.bias")
        for h in range(H):
            q_off, k_off, v_off = h * dqk, H * dqk + h * dqk, 2 * H * dqk + h * dv
            qk = [Slice(n, 0, off, dqk) for n in qkv for off in (q_off, k_off)]
            groups.append(Group(f"{p}.qk.{h}", "qk", i, h, dqk, tuple(qk)))
            v = [Slice(n, 0, v_off, dv) for n in qkv] + [Slice(f"{p}.attn.proj.weight", 1, h * dv, dv)]
            groups.append(Group(f"{p}.v.{h}", "v", i, h, dv, tuple(v)))
        M = blk.mlp.fc1.out_features
        mlp = [Slice(n, 0, 0, M) for n in _present(params, f"{p}.mlp.fc1.weight", f"{p}.mlp.fc1.bias",
                                                    f"{p}.mlp.norm.weight", f"{p}.mlp.norm.bias")]
        mlp.append(Slice(f"{p}.mlp.fc2.weight", 1, 0, M))
        groups.append(Group(f"{p}.mlp", "mlp", i, None, M, tuple(mlp)))
    return [Group("embed", "embed", None, None, E, tuple(embed)), *groups]


def select(state: dict[str, torch.Tensor], groups: list[Group], keep: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Shrink a state_dict: along every grouped dimension keep only the indices in ``keep[group.name]``.

    Args:
        state: parameters of the model the groups were found on.
        groups: :func:`find_groups` of that model.
        keep: group name -> sorted LongTensor of kept indices (0..width-1); a group absent from ``keep``
            keeps everything, an empty tensor removes the group (a pruned head).
    Returns:
        a new state_dict whose tensors are the kept slices, in their original order.
    """
    index: dict[tuple[str, int], torch.Tensor] = {}
    for g in groups:
        kept = keep.get(g.name)
        for s in g.slices:
            key = (s.param, s.dim)
            if key not in index:
                index[key] = torch.ones(state[s.param].shape[s.dim], dtype=torch.bool)
            if kept is not None:
                mask = torch.zeros(s.width, dtype=torch.bool)
                mask[kept] = True
                index[key][s.offset:s.offset + s.width] = mask
    out = {}
    for name, tensor in state.items():
        for (param, dim), mask in index.items():
            if param == name and not bool(mask.all()):
                tensor = tensor.index_select(dim, mask.nonzero().flatten())
        out[name] = tensor.contiguous()
    return out
