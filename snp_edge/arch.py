"""The architecture of a (pruned) ViT as data: what ``model.json`` stores and what rebuilds the model.

An :class:`Arch` lists, for the one residual width and for every kept block, the widths that remain.
:func:`arch_of` reads it off a live model; :func:`build_skeleton` makes an uninitialised model of that
shape from the timm base model, without its weights (the meta device), ready for ``load_state_dict``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
from timm.layers import LayerScale
from torch import nn

from .attention import PrunedAttention, attn_layout
from .engines.common.schema import Document
from .errors import SnpEdgeError
from .memory import check_allocation
from .sublayers import SublayerBlock, attention_kept, mlp_kept
from .vit import create_model


@dataclass
class BlockArch:
    """Widths kept in one transformer block.

    Attributes:
        index: position of the block in the base model (blocks can be dropped).
        heads: attention heads kept; 0: the attention branch is removed (then qk and v are 0 too).
        qk: query/key neurons per head.
        v: value neurons per head.
        mlp: FFN hidden neurons (fc1 outputs = fc2 inputs); 0: the FFN branch is removed.

    Zero widths: :mod:`snp_edge.sublayers`.
    """

    index: int
    heads: int
    qk: int
    v: int
    mlp: int


@dataclass
class Arch:
    """A ViT's prunable widths. ``blocks`` holds kept blocks only, in order."""

    embed: int
    blocks: list[BlockArch]
    head_dim: int  # original per-head width (the softmax scale is head_dim ** -0.5)
    depth: int  # original number of blocks
    num_heads: int  # original heads per block
    mlp: int  # original FFN width
    embed_orig: int
    heads_kept: list[list[int]] = field(default_factory=list)  # original head indices per kept block

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Arch:
        data = dict(data)
        data["blocks"] = [BlockArch(**b) for b in data["blocks"]]
        return cls(**data)

    @property
    def blocks_kept(self) -> list[int]:
        return [b.index for b in self.blocks]


def arch_of(model: nn.Module) -> Arch:
    """Read the widths of a supported timm ViT (pruned or not; a removed sublayer reads as width 0). The
    original sizes are those of an unpruned model; of a pruned one, its first block's that has the sublayer
    (``Arch.from_dict`` of its model.json has the base model's)."""
    blocks = []
    for i, blk in enumerate(model.blocks):
        heads, qk, v = attn_layout(blk.attn) if blk.attn is not None else (0, 0, 0)
        blocks.append(BlockArch(index=i, heads=heads, qk=qk, v=v,
                                mlp=blk.mlp.fc1.out_features if blk.mlp is not None else 0))
    first = next((blk.attn for blk in model.blocks if blk.attn is not None), None)
    head_dim = round(first.scale ** -2) if first is not None else max(b.qk for b in blocks)
    return Arch(
        embed=model.patch_embed.proj.out_channels,
        blocks=blocks,
        head_dim=head_dim,
        depth=len(blocks),
        num_heads=next((b.heads for b in blocks if b.heads), 0),
        mlp=next((b.mlp for b in blocks if b.mlp), 0),
        embed_orig=model.patch_embed.proj.out_channels,
        heads_kept=[list(range(b.heads)) for b in blocks],
    )


def check_arch(arch: Arch, base: Arch, label: str = "widths") -> None:
    """Refuse an ``arch`` the unpruned model ``base`` cannot become, naming the field: original sizes that are
    not the base's, widths outside 1..the base's (0..: a removed sublayer, heads, qk and v all 0 together), block
    indices out of range, repeated or out of order, ``heads_kept`` that does not list each kept block's heads."""
    doc = Document(label, SnpEdgeError)
    for key in ("head_dim", "depth", "num_heads", "mlp", "embed_orig"):
        if getattr(arch, key) != getattr(base, key):
            doc.fail(f"arch.{key}", f"{getattr(base, key)} (the base model's)", getattr(arch, key))
    doc.int_value(arch.embed, "arch.embed", 1, base.embed_orig)
    if not 1 <= len(arch.blocks) <= base.depth:
        doc.fail("arch.blocks", f"1 to {base.depth} blocks", f"{len(arch.blocks)} blocks")
    previous = -1
    for j, b in enumerate(arch.blocks):
        field = f"arch.blocks[{j}]"
        doc.int_value(b.index, f"{field}.index", previous + 1, base.depth - 1)  # increasing: no repeats
        previous = b.index
        for name, orig in (("heads", base.num_heads), ("qk", base.head_dim), ("v", base.head_dim),
                           ("mlp", base.mlp)):
            doc.int_value(getattr(b, name), f"{field}.{name}", 0, orig)
        if not attention_kept(b) and (b.heads, b.qk, b.v) != (0, 0, 0):
            doc.fail(f"{field}", "heads, qk and v all above 0, or all 0 (attention removed)",
                     f"heads {b.heads}, qk {b.qk}, v {b.v}")
    if arch.heads_kept:
        if len(arch.heads_kept) != len(arch.blocks):
            doc.fail("arch.heads_kept", f"one list per kept block ({len(arch.blocks)})", arch.heads_kept)
        for j, (heads, b) in enumerate(zip(arch.heads_kept, arch.blocks, strict=True)):
            ok = isinstance(heads, list) and len(heads) == b.heads and \
                all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h < base.num_heads for h in heads)
            if not ok or heads != sorted(set(heads)):
                doc.fail(f"arch.heads_kept[{j}]", f"{b.heads} increasing head indices in [0, {base.num_heads})",
                         heads)


def canonical(arch: Arch) -> Arch:
    """``arch`` with every removed attention written as 0 heads, 0 query/key and 0 value neurons (and no kept
    heads), and blocks whose attention and FFN are both removed dropped (they compute the identity), unless
    none would be left. The allocator's widths may mark a removed attention by a value width of 0 alone."""
    rows = [(b if attention_kept(b) else replace(b, heads=0, qk=0, v=0),
             arch.heads_kept[j] if attention_kept(b) and arch.heads_kept else []) for j, b in enumerate(arch.blocks)]
    rows = [(b, h) for b, h in rows if attention_kept(b) or mlp_kept(b)] or rows
    return replace(arch, blocks=[b for b, _ in rows], heads_kept=[h for _, h in rows] if arch.heads_kept else [])


def _layer_norm(old: nn.Module, width: int) -> nn.Module:
    if isinstance(old, nn.Identity):
        return old
    if not isinstance(old, nn.LayerNorm):
        raise SnpEdgeError(f"unsupported norm layer {type(old).__name__}: snp-edge handles LayerNorm")
    return nn.LayerNorm(width, eps=old.eps, elementwise_affine=old.elementwise_affine, bias=old.bias is not None)


def _linear(old: nn.Module, in_features: int, out_features: int) -> nn.Module:
    if isinstance(old, nn.Identity):
        return old
    return nn.Linear(in_features, out_features, bias=old.bias is not None)


def _layer_scale(old: nn.Module, width: int) -> nn.Module:
    if isinstance(old, LayerScale):
        return LayerScale(width, init_values=1.0, inplace=old.inplace)
    return old


def _token(old: nn.Parameter | None, width: int) -> nn.Parameter | None:
    if old is None:
        return None
    return nn.Parameter(torch.empty(*old.shape[:-1], width))


def apply_arch(model: nn.Module, arch: Arch) -> nn.Module:
    """Replace the layers of ``model`` (a base timm ViT, best on the meta device) by layers of ``arch``'s shape.

    Parameters are left uninitialised; load a state_dict afterwards.
    """
    E = arch.embed
    scale = arch.head_dim ** -0.5
    pe = model.patch_embed
    old = pe.proj
    pe.proj = nn.Conv2d(old.in_channels, E, old.kernel_size, old.stride, old.padding, bias=old.bias is not None)
    pe.norm = _layer_norm(pe.norm, E)
    for name in ("cls_token", "dist_token", "reg_token", "pos_embed"):
        if getattr(model, name, None) is not None:
            setattr(model, name, _token(getattr(model, name), E))
    model.norm_pre = _layer_norm(model.norm_pre, E)
    kept = []
    for b in arch.blocks:
        blk = model.blocks[b.index]
        if not (attention_kept(b) and mlp_kept(b)):  # a sublayer removed: no modules, no kernels
            blk = SublayerBlock.of(blk, attn=attention_kept(b), mlp=mlp_kept(b))
        if blk.attn is not None:
            attn = blk.attn
            blk.norm1 = _layer_norm(blk.norm1, E)
            blk.attn = PrunedAttention(E, b.heads, b.qk, b.v, scale,
                                       qkv_bias=attn.qkv.bias is not None, proj_bias=attn.proj.bias is not None)
            blk.ls1 = _layer_scale(blk.ls1, E)
        if blk.mlp is not None:
            blk.norm2 = _layer_norm(blk.norm2, E)
            blk.mlp.fc1 = _linear(blk.mlp.fc1, E, b.mlp)
            blk.mlp.norm = _layer_norm(blk.mlp.norm, b.mlp)
            blk.mlp.fc2 = _linear(blk.mlp.fc2, b.mlp, E)
            blk.ls2 = _layer_scale(blk.ls2, E)
        kept.append(blk)
    model.blocks = nn.Sequential(*kept)
    model.norm = _layer_norm(model.norm, E)
    model.fc_norm = _layer_norm(model.fc_norm, E)
    model.head = _linear(model.head, E, model.num_classes)
    if hasattr(model, "head_dist"):
        model.head_dist = _linear(model.head_dist, E, model.num_classes)
    model.embed_dim = model.num_features = model.head_hidden_size = E
    return model


def build_skeleton(base_model: str, model_args: dict, arch: Arch, source: str = "widths") -> nn.Module:
    """An uninitialised model of shape ``arch`` (on the CPU), built from timm's ``base_model`` definition.

    Nothing is allocated before ``arch`` is checked against the base model (:func:`check_arch`, errors name
    ``source``) and the model's size against the memory available."""
    model = create_model(base_model, model_args, device="meta")
    check_arch(arch, arch_of(model), source)
    with torch.device("meta"):
        apply_arch(model, arch)
    nbytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    check_allocation(nbytes, f"the model of {source}")
    return model.to_empty(device="cpu").eval()
