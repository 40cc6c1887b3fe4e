"""Scoring a model: forward hooks gather the calibration statistics the data-driven criteria need, then every
prunable unit (Q/K pairs, values, FFN neurons, residual channels, heads, blocks) gets its score."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..attention import attn_layout, split_qkv
from ..errors import SnpEdgeError
from ..progress import bar
from . import COMPONENTS, ScoreOptions
from .importance import REGISTRY, pnorm
from .residual import ablation_scores, fisher_scores, kl_order, order_scores, rank_onto
from .snp import EPS

BLOCK_COMPONENTS = tuple(c for c in COMPONENTS if c != "embed")  # scored block by block, in this order


@dataclass
class Scores:
    """Importance per component. Shapes: qk[b] (H, d_qk), v[b] (H, d_v), mlp[b] (M,), heads[b] (H,),
    embed (E,), blocks (depth,); b indexes model.blocks."""

    qk: list[torch.Tensor]
    v: list[torch.Tensor]
    mlp: list[torch.Tensor]
    heads: list[torch.Tensor]
    embed: torch.Tensor
    blocks: torch.Tensor


class _Collector:
    """Forward hooks that accumulate the calibration statistics the data-driven scores need."""

    def __init__(self, model: nn.Module, opts: ScoreOptions, wanted: frozenset[str]) -> None:
        self.model, self.opts = model, opts
        self.stats: dict[str, dict[int, torch.Tensor]] = {}
        self.images = 0
        self.handles = []
        self.need = need = lambda comp: comp in wanted and opts.data_driven(comp)  # noqa: E731
        for i, blk in enumerate(model.blocks):
            if need("qk") or need("v") or need("heads"):
                self.handles.append(blk.attn.qkv.register_forward_hook(self._qkv_hook(i)))
            if need("mlp"):
                self.handles.append(blk.mlp.act.register_forward_hook(self._act_hook(i)))
            if need("blocks") or (need("embed") and opts.embed_score == "act"):
                self.handles.append(blk.register_forward_hook(self._block_hook(i)))
            if need("embed") and opts.embed_score == "ln":
                for name, mod in (("norm1", blk.norm1), ("norm2", blk.norm2), ("proj", blk.attn.proj),
                                  ("fc2", blk.mlp.fc2)):
                    self.handles.append(mod.register_forward_hook(self._channel_hook(f"ln.{name}", i)))
        if need("embed") and opts.embed_score == "ln" and isinstance(model.norm, nn.LayerNorm):
            self.handles.append(model.norm.register_forward_hook(self._channel_hook("ln.norm", 0, cls_only=True)))

    def _add(self, key: str, i: int, value: torch.Tensor) -> None:
        bucket = self.stats.setdefault(key, {})
        bucket[i] = bucket[i] + value if i in bucket else value

    def _qkv_hook(self, i: int):
        attn = self.model.blocks[i].attn
        qk_criterion, need = REGISTRY[self.opts.criteria["qk"]], self.need

        def hook(_module, _inputs, out):
            q, k, v = split_qkv(attn, out)
            if need("qk"):
                self._add("qk", i, qk_criterion.qk_statistic(q, k, attn, self.opts).sum(0))
            if need("v") or need("heads"):
                probs = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1)
                o = probs @ v  # (B, H, N, d_v)
                w_proj = attn.proj.weight  # (D, H*d_v)
                H, dv = o.shape[1], o.shape[-1]
                if need("v"):
                    col = w_proj.norm(dim=0).reshape(H, dv)
                    self._add("v", i, o.norm(dim=2).sum(0) * col)
                if need("heads"):
                    w = w_proj.reshape(w_proj.shape[0], H, dv).permute(1, 2, 0)  # (H, d_v, D)
                    contrib = torch.einsum("bhnd,hde->bhne", o, w)
                    self._add("heads", i, contrib.flatten(2).norm(dim=-1).sum(0))

        return hook

    def _act_hook(self, i: int):
        def hook(_module, _inputs, out):
            self._add("mlp", i, out.norm(dim=1).sum(0))  # (M,): |act_i| over tokens, summed over images

        return hook

    def _channel_hook(self, key: str, i: int, cls_only: bool = False):
        def hook(_module, _inputs, out):  # E|out_c| over tokens (the class token only: what the head reads)
            self._add(key, i, (out[:, 0] if cls_only else out).abs().flatten(0, -2).mean(0) * len(out))

        return hook

    def _block_hook(self, i: int):
        def hook(_module, inputs, out):
            x = inputs[0]
            if self.need("blocks"):
                rel = (out - x).flatten(1).norm(dim=1) / (x.flatten(1).norm(dim=1) + EPS)
                self._add("blocks", i, rel.sum().reshape(1))
            if self.need("embed") and self.opts.embed_score == "act":
                self._add("embed", i, x.abs().mean(dim=1).sum(0))

        return hook

    @torch.no_grad()
    def run(self, images: torch.Tensor, progress: bool) -> None:
        bs = self.opts.batch_size
        try:
            for start in bar(range(0, len(images), bs), desc="calibration", unit="batch", disable=not progress):
                batch = images[start:start + bs]
                self.model(batch)
                self.images += len(batch)
        finally:
            for h in self.handles:
                h.remove()

    def mean(self, key: str, i: int) -> torch.Tensor:
        return self.stats[key][i] / self.images


def _tss_embed(model: nn.Module, p: int, act: list[torch.Tensor] | None) -> torch.Tensor:
    """Residual-channel scores: each coupled layer's per-channel score divided by its total ("total sum
    scaling"), averaged over the layers. (E,)"""
    per_layer = [pnorm(model.patch_embed.proj.weight.flatten(1), p, 1)]
    for blk in model.blocks:
        per_layer += [pnorm(blk.attn.qkv.weight, p, 0), pnorm(blk.mlp.fc1.weight, p, 0),
                      pnorm(blk.attn.proj.weight, p, 1), pnorm(blk.mlp.fc2.weight, p, 1)]
    for name in ("head", "head_dist"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear) and head.out_features > 0:
            per_layer.append(pnorm(head.weight, p, 0))
    per_layer += act or []
    return torch.stack([s / (s.sum() + EPS) for s in per_layer]).mean(0)


def _ln_embed(model: nn.Module, col: _Collector) -> torch.Tensor:
    """Residual-channel scores from data, LayerNorm gains included (``--embed-score ln``). (E,)

    Per layer that reads the residual stream through a LayerNorm (qkv, fc1, the classifier), channel c
    contributes ``y_c W[:, c]`` with ``y = LN(x)`` (gain and bias applied): its score there is
    ``E|y_c| * |W[:, c]|``. Per layer that writes into the stream (proj, fc2), it is ``E|out_c|``. Each
    layer's scores are divided by their total (total sum scaling, as the paper's residual rule) and averaged.
    """
    per_layer = []
    for i, blk in enumerate(model.blocks):
        per_layer += [col.mean("ln.norm1", i) * blk.attn.qkv.weight.norm(dim=0),
                      col.mean("ln.norm2", i) * blk.mlp.fc1.weight.norm(dim=0),
                      col.mean("ln.proj", i), col.mean("ln.fc2", i)]
    if "ln.norm" in col.stats:
        heads = [getattr(model, n, None) for n in ("head", "head_dist")]
        w = sum(h.weight.norm(dim=0) for h in heads if isinstance(h, nn.Linear) and h.out_features > 0)
        if isinstance(w, torch.Tensor):
            per_layer.append(col.mean("ln.norm", 0) * w)
    return torch.stack([s / (s.sum() + EPS) for s in per_layer]).mean(0)


def _kl_embed(model: nn.Module, images: torch.Tensor, opts: ScoreOptions) -> torch.Tensor:
    return order_scores(kl_order(model, images, opts.batch_size, seed=opts.seed), model.patch_embed.proj.out_channels)


# --embed-score name -> (model, images, opts) -> (E,) scores whose order is the criterion's (see .residual)
OUTPUT_EMBED_SCORES = {
    "kl": _kl_embed,
    "fisher": lambda model, images, opts: fisher_scores(model, images, opts.batch_size),
    "ablation": lambda model, images, opts: ablation_scores(model, images, opts.batch_size),
}


def _output_embed(model: nn.Module, images: torch.Tensor, opts: ScoreOptions) -> torch.Tensor:
    """Residual scores of the output-based criteria (:mod:`.residual`): their order, l1's values. (E,)"""
    return rank_onto(OUTPUT_EMBED_SCORES[opts.embed_score](model, images, opts), _tss_embed(model, 1, None))


@dataclass
class BlockView:
    """What a criterion reads to score one block (:mod:`.importance`): its weights, split per role (rows of
    ``wq``/``wk`` (H*d_qk, D), ``wv`` (H*d_v, D); ``fc1`` (M, D), ``fc2`` (D, M)), its calibration statistics
    and the generator shared by the whole model."""

    index: int
    block: nn.Module
    opts: ScoreOptions
    collector: _Collector | None
    generator: torch.Generator

    def __post_init__(self) -> None:
        self.attn = self.block.attn
        self.H, self.dqk, self.dv = attn_layout(self.attn)
        self.wq, self.wk, self.wv = self.attn.qkv.weight.split([self.H * self.dqk, self.H * self.dqk,
                                                                self.H * self.dv], dim=0)
        self.fc1, self.fc2 = self.block.mlp.fc1.weight, self.block.mlp.fc2.weight

    def stat(self, key: str) -> torch.Tensor:
        """The calibration statistic ``key`` of this block, averaged over the images."""
        return self.collector.mean(key, self.index)

    def rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator)

    def zeros(self, *shape) -> torch.Tensor:
        return torch.zeros(*shape)


@dataclass
class ModelView:
    """What a criterion reads to score the residual width: the model, the calibration images and statistics,
    and the measurements behind each ``--embed-score`` (:meth:`base_embed`)."""

    model: nn.Module
    images: torch.Tensor | None
    opts: ScoreOptions
    collector: _Collector | None
    generator: torch.Generator

    @property
    def width(self) -> int:
        return self.model.patch_embed.proj.out_channels

    def rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator)

    def zeros(self, *shape) -> torch.Tensor:
        return torch.zeros(*shape)

    def base_embed(self, score: str) -> torch.Tensor:
        """Residual-channel scores by the per-layer base score ``score`` (a name of ``EMBED_SCORES``). (E,)"""
        if score == "ln":
            return _ln_embed(self.model, self.collector)
        if score in OUTPUT_EMBED_SCORES:
            return _output_embed(self.model, self.images, self.opts)
        act = [self.collector.mean("embed", i) for i in range(len(self.model.blocks))] if score == "act" else None
        return _tss_embed(self.model, 2 if score == "l2" else 1, act)


@torch.no_grad()
def compute_scores(model: nn.Module, images: torch.Tensor | None, opts: ScoreOptions,
                   wanted: frozenset[str] = frozenset(COMPONENTS), progress: bool = False) -> Scores:
    """Score every prunable unit of ``model`` (eval mode) on calibration ``images`` (N, C, H, W).

    Components not in ``wanted`` (nothing of them is pruned) get zero scores and cost no calibration work.
    Each component is scored by its criterion's class in :data:`~.importance.REGISTRY`.
    """
    crit = {c: REGISTRY[name if c in wanted else "zero"] for c, name in opts.criteria.items()}
    gen = torch.Generator().manual_seed(opts.seed)
    col = None
    if any(c in wanted and opts.data_driven(c) for c in COMPONENTS):
        if images is None or len(images) == 0:
            raise SnpEdgeError("data-driven criteria need calibration images")
        col = _Collector(model, opts, wanted)
        col.run(images, progress)
    per_block: dict[str, list[torch.Tensor]] = {c: [] for c in BLOCK_COMPONENTS}
    for i, blk in enumerate(model.blocks):
        view = BlockView(i, blk, opts, col, gen)
        for comp in BLOCK_COMPONENTS:  # this order draws the random scores as before
            per_block[comp].append(crit[comp].score(comp, view))
    embed = crit["embed"].embed(ModelView(model, images, opts, col, gen))
    return Scores(qk=per_block["qk"], v=per_block["v"], mlp=per_block["mlp"], heads=per_block["heads"], embed=embed,
                  blocks=torch.stack(per_block["blocks"]))
