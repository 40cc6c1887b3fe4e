"""Latency as a pruning cost: a measured latency table (:mod:`snp_edge.engines.latency_table`, written by
``snp-edge profile`` or ``python3 -m engines profile``) read as a :class:`~snp_edge.allocation.Cost`.

The allocator asks for the cost outside the blocks at a residual width (patch embedding + classifier) and
for one block's cost; both are the table's interpolated parts times its calibration factor, in ms, the
calibration's constant counted once, with the parts outside the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .allocation import MacCost
from .arch import Arch, BlockArch, arch_of
from .engines import latency_table as lt
from .errors import SnpEdgeError
from .macs import macs_constants
from .models import ModelHandle


def geometry(model: nn.Module, name: str) -> dict:
    """The ``model`` entry of a latency table for an unpruned timm ViT."""
    arch = arch_of(model)
    consts = macs_constants(model)
    pe = model.patch_embed
    return {"name": name, "tokens": consts["tokens"], "embed": arch.embed_orig, "heads": arch.num_heads,
            "head_dim": arch.head_dim, "mlp": arch.mlp, "depth": arch.depth, "img_size": int(pe.img_size[0]),
            "patch_size": int(pe.patch_size[0]), "in_chans": int(pe.proj.in_channels),
            "head_outputs": consts["head_outputs"], "prefix_tokens": int(model.num_prefix_tokens)}


def check_matches(table: dict, handle: ModelHandle, source: str) -> None:
    """Refuse a table measured for another geometry than ``handle``'s base model."""
    if handle.pruned:
        raise SnpEdgeError("a latency target needs the unpruned base model")
    mine = geometry(handle.model, handle.base_model)
    theirs = table["model"]
    differ = [k for k in ("tokens", "embed", "heads", "head_dim", "mlp", "depth", "head_outputs") if mine[k] != theirs[k]]
    if differ:
        raise SnpEdgeError(f"{source} was measured for {theirs['name']} ({', '.join(f'{k} {theirs[k]}' for k in differ)}), "
                           f"not for this model ({', '.join(f'{k} {mine[k]}' for k in differ)})")


@dataclass(frozen=True)
class LatencyCost:
    """Predicted milliseconds on the table's backend; ``macs`` weights the allocator's importance."""

    table: dict
    macs: MacCost
    unit: str = "ms"

    @classmethod
    def from_file(cls, path: str | Path, handle: ModelHandle, macs: MacCost | None = None) -> LatencyCost:
        table = lt.read_table(path)
        check_matches(table, handle, str(path))
        return cls(table, macs or MacCost(**macs_constants(handle.model)))

    def fixed(self, embed: int) -> float:
        return lt.offset(self.table) + lt.factor(self.table) * (lt.term_ms(self.table, "stem", {"embed": embed}) +
                                                                 lt.term_ms(self.table, "head", {"embed": embed}))

    def block(self, embed: int, block: BlockArch) -> float:
        """The block's attention and FFN terms; a removed one (width 0, :mod:`snp_edge.sublayers`) costs 0 ms."""
        return lt.factor(self.table) * lt.block_parts(self.table, embed, vars(block))

    def smallest(self, comp: str) -> int:
        """The table's narrowest measured width (below it a prediction would be an extrapolation; a removed
        sublayer, width 0, costs nothing and is always known)."""
        return int(min(self.table["grid"][comp]))


def predict_ms(table: dict, arch: Arch) -> float:
    """Predicted latency (ms) of a model of widths ``arch``."""
    return lt.predict_ms(table, arch.embed, [vars(b) for b in arch.blocks])


def describe(table: dict) -> dict:
    """What a prediction was made with (stored beside it)."""
    return {k: table.get(k) for k in ("backend", "precision", "batch", "threads", "device", "created", "tool")} | \
        {"model": table["model"]["name"], "factor": lt.factor(table), "offset_ms": lt.offset(table)}


def predicted_summary(table: dict, before: ModelHandle, arch: Arch) -> dict:
    """``predicted_ms_before`` / ``predicted_ms_after`` / ``predicted_speedup`` and the table's description,
    for the prune summary and model.json."""
    b, a = predict_ms(table, arch_of(before.model)), predict_ms(table, arch)
    return {"predicted_ms_before": round(b, 4), "predicted_ms_after": round(a, 4),
            "predicted_speedup": round(b / a, 4), "latency_table": describe(table)}
