"""Surgery: scores -> kept indices -> a smaller dense model of the target's widths (SNP pruning end to end)."""

from __future__ import annotations

import re
from dataclasses import replace

import torch

from .arch import Arch, BlockArch, arch_of, build_skeleton, canonical, check_arch
from .calib import Calibration
from .criteria import ScoreOptions, Scores, compute_scores
from .errors import SnpEdgeError
from .groups import find_groups, select
from .models import ModelHandle
from .sublayers import drop_removed
from .vit import load_state_dict_checked


def top_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` highest scores, in ascending index order (ties: lower index first)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[:k].sort().values


def choose_blocks(scores: Scores, arch: Arch, drop: int) -> Arch:
    """Drop the ``drop`` least important of ``arch``'s blocks (block criterion)."""
    if drop <= 0:
        return arch
    kept = [b.index for b in arch.blocks]
    if drop >= len(kept):
        raise SnpEdgeError(f"--drop-blocks {drop} would remove every one of the {len(kept)} blocks")
    keep = set(top_indices(scores.blocks[kept], len(kept) - drop).tolist())
    return replace(arch, blocks=[b for j, b in enumerate(arch.blocks) if j in keep],
                   heads_kept=[h for j, h in enumerate(arch.heads_kept) if j in keep])


def kept_indices(scores: Scores, arch: Arch) -> tuple[dict[str, torch.Tensor], list[list[int]]]:
    """Group name -> kept indices for ``arch`` (see :func:`snp_edge.groups.find_groups` for names),
    and the original indices of the heads kept in each block. Heads are chosen first, then the
    query/key and value neurons inside each kept head."""
    keep = {"embed": top_indices(scores.embed, arch.embed)}
    heads_kept = []
    for b in arch.blocks:
        block_keep, heads = kept_in_block(scores, b)
        keep.update(block_keep)
        heads_kept.append(heads)
    return keep, heads_kept


def kept_in_block(scores: Scores, b: BlockArch) -> tuple[dict[str, torch.Tensor], list[int]]:
    """:func:`kept_indices` of one block: its groups' kept indices and the original indices of its kept heads."""
    i = b.index
    heads = top_indices(scores.heads[i], b.heads).tolist()
    keep = {}
    for h in range(scores.heads[i].numel()):
        if h in heads:
            keep[f"blocks.{i}.qk.{h}"] = top_indices(scores.qk[i][h], b.qk)
            keep[f"blocks.{i}.v.{h}"] = top_indices(scores.v[i][h], b.v)
        else:
            keep[f"blocks.{i}.qk.{h}"] = keep[f"blocks.{i}.v.{h}"] = torch.empty(0, dtype=torch.long)
    keep[f"blocks.{i}.mlp"] = top_indices(scores.mlp[i], b.mlp)
    return keep, heads


def renumber_blocks(state: dict[str, torch.Tensor], kept: list[int]) -> dict[str, torch.Tensor]:
    """Drop parameters of removed blocks and renumber ``blocks.<old>.`` to ``blocks.<new>.``."""
    new_of = {old: new for new, old in enumerate(kept)}
    out = {}
    for name, tensor in state.items():
        m = re.match(r"blocks\.(\d+)\.(.*)", name)
        if m is None:
            out[name] = tensor
        elif int(m.group(1)) in new_of:
            out[f"blocks.{new_of[int(m.group(1))]}.{m.group(2)}"] = tensor
    return out


def pruned_components(arch: Arch, base: Arch, drop_blocks: int = 0) -> frozenset[str]:
    """Components of which ``arch`` removes something (only those need scores)."""
    comps = {"embed"} if arch.embed < base.embed_orig else set()
    for b in arch.blocks:
        comps |= {c for c, w, o in (("heads", b.heads, base.num_heads), ("qk", b.qk, base.head_dim),
                                    ("v", b.v, base.head_dim), ("mlp", b.mlp, base.mlp)) if w < o}
    if drop_blocks > 0:
        comps.add("blocks")
    return frozenset(comps)


def _check_unpruned(handle: ModelHandle) -> None:
    if handle.pruned:
        raise SnpEdgeError("this model is already pruned; prune the unpruned base model instead")


def prune_model(handle: ModelHandle, arch: Arch, calib: Calibration | None, opts: ScoreOptions,
                drop_blocks: int = 0, progress: bool = False) -> ModelHandle:
    """Score ``handle``'s model and prune it to the widths of ``arch`` (see :func:`apply_widths`).

    Args:
        handle: an unpruned supported timm ViT.
        arch: target widths (from a preset, a config or an allocation); its blocks are those kept.
        calib: calibration images for the data-driven scores (None when every criterion is weight-only).
        opts: criterion per component and its parameters.
        drop_blocks: additionally remove this many blocks, chosen by the block criterion.
    """
    _check_unpruned(handle)
    base = arch_of(handle.model)
    arch = canonical(arch)
    check_arch(arch, base)
    wanted = pruned_components(arch, base, drop_blocks)
    scores = compute_scores(handle.model.eval(), calib.images if calib is not None else None, opts, wanted, progress)
    return apply_widths(handle, choose_blocks(scores, arch, drop_blocks), scores)


def apply_widths(handle: ModelHandle, arch: Arch, scores: Scores) -> ModelHandle:
    """The smaller dense model of ``arch``'s widths, keeping the units ``scores`` rank highest.

    ``scores`` are those of ``handle``'s model, computed once by the caller and also used to choose the widths
    (:mod:`snp_edge.allocation`). A pruned ``handle`` (iterative pruning, :mod:`snp_edge.train.iterative`) is
    pruned again: ``arch`` then counts its blocks and heads by position in the pruned model, and the result's
    arch is composed back into the unpruned base model's indices (:func:`compose_arch`).
    """
    model = handle.model.eval()
    current = arch_of(model)
    arch = canonical(arch)  # a sublayer of width 0 is removed (:mod:`snp_edge.sublayers`)
    if handle.pruned:
        _check_within(arch, current)
    else:
        check_arch(arch, current)
    keep, heads_kept = kept_indices(scores, arch)
    state = select(model.state_dict(), find_groups(model), keep)
    state = drop_removed(renumber_blocks(state, arch.blocks_kept), arch.blocks)
    arch = replace(arch, heads_kept=heads_kept)
    if handle.pruned:
        arch = compose_arch(Arch.from_dict(handle.arch), arch)
    pruned = build_skeleton(handle.base_model, handle.model_args, arch)
    load_state_dict_checked(pruned, state, "after surgery")
    return ModelHandle(pruned, handle.base_model, handle.model_args, handle.weights,
                       accuracy_meaningful=handle.accuracy_meaningful, notice=handle.notice,
                       arch=arch.to_dict(), name=f"{handle.base_model} (SNP)")


def _check_within(arch: Arch, current: Arch) -> None:
    """Refuse widths of a pruned model's next cut that exceed its own (block by block, by position)."""
    if arch.embed > current.embed or len(arch.blocks) > len(current.blocks):
        raise SnpEdgeError(f"widths exceed the pruned model's: embed {arch.embed} > {current.embed} or "
                           f"{len(arch.blocks)} > {len(current.blocks)} blocks")
    for b in arch.blocks:
        if not 0 <= b.index < len(current.blocks):
            raise SnpEdgeError(f"block position {b.index} outside the pruned model's {len(current.blocks)} blocks")
        have = current.blocks[b.index]
        for name in ("heads", "qk", "v", "mlp"):  # 0: the sublayer removed (canonical: heads, qk, v together)
            if not 0 <= getattr(b, name) <= getattr(have, name):
                raise SnpEdgeError(f"block {b.index} {name} {getattr(b, name)} outside 0..{getattr(have, name)} "
                                   "(the pruned model's)")


def compose_arch(outer: Arch, inner: Arch) -> Arch:
    """The widths of cutting a pruned model (``outer``, in the base model's indices) to ``inner`` (blocks and
    heads_kept by position in the pruned model), in the base model's indices: what build_skeleton takes."""
    blocks = [replace(b, index=outer.blocks[b.index].index) for b in inner.blocks]
    heads = [[outer.heads_kept[b.index][h] for h in hk] for b, hk in zip(inner.blocks, inner.heads_kept, strict=True)]
    return replace(outer, embed=inner.embed, blocks=blocks, heads_kept=heads)
