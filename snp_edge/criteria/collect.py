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
from .residual import ablation_scores, fisher_scores, kl_order, order_scores, rank_onto
from .snp import EPS, attn_qk_scores, snp_qk_scores, snp_v_scores


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
        crit, need = self.opts.criteria, self.need

        def hook(_module, _inputs, out):
            q, k, v = split_qkv(attn, out)
            if need("qk") and crit["qk"] == "snp":
                self._add("qk", i, snp_qk_scores(q, k, self.opts.gamma).sum(0))
            elif need("qk") and crit["qk"] == "snp-attn":
                self._add("qk", i, attn_qk_scores(q, k, attn.scale).sum(0))
            elif need("qk"):
                self._add("qk", i, (q.norm(dim=2) * k.norm(dim=2)).sum(0))
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


def _pnorm(w: torch.Tensor, p: int, dim) -> torch.Tensor:
    return w.abs().sum(dim=dim) if p == 1 else w.pow(2).sum(dim=dim).sqrt()


def _tss_embed(model: nn.Module, p: int, act: list[torch.Tensor] | None) -> torch.Tensor:
    """Residual-channel scores: each coupled layer's per-channel score divided by its total ("total sum
    scaling"), averaged over the layers. (E,)"""
    per_layer = [_pnorm(model.patch_embed.proj.weight.flatten(1), p, 1)]
    for blk in model.blocks:
        per_layer += [_pnorm(blk.attn.qkv.weight, p, 0), _pnorm(blk.mlp.fc1.weight, p, 0),
                      _pnorm(blk.attn.proj.weight, p, 1), _pnorm(blk.mlp.fc2.weight, p, 1)]
    for name in ("head", "head_dist"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear) and head.out_features > 0:
            per_layer.append(_pnorm(head.weight, p, 0))
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


@torch.no_grad()
def compute_scores(model: nn.Module, images: torch.Tensor | None, opts: ScoreOptions,
                   wanted: frozenset[str] = frozenset(COMPONENTS), progress: bool = False) -> Scores:
    """Score every prunable unit of ``model`` (eval mode) on calibration ``images`` (N, C, H, W).

    Components not in ``wanted`` (nothing of them is pruned) get zero scores and cost no calibration work.
    """
    crit = {c: (crit if c in wanted else "zero") for c, crit in opts.criteria.items()}
    gen = torch.Generator().manual_seed(opts.seed)
    col = None
    if any(c in wanted and opts.data_driven(c) for c in COMPONENTS):
        if images is None or len(images) == 0:
            raise SnpEdgeError("data-driven criteria need calibration images")
        col = _Collector(model, opts, wanted)
        col.run(images, progress)
    qk, v, mlp, heads = [], [], [], []
    block_scores = []
    for i, blk in enumerate(model.blocks):
        attn = blk.attn
        H, dqk, dv = attn_layout(attn)
        w = attn.qkv.weight
        wq, wk, wv = w.split([H * dqk, H * dqk, H * dv], dim=0)
        # query/key pairs
        if crit["qk"] == "zero":
            qk.append(torch.zeros(H, dqk))
        elif crit["qk"] in ("snp", "snp-data", "snp-attn"):
            qk.append(col.mean("qk", i))
        elif crit["qk"] == "random":
            qk.append(torch.rand(H, dqk, generator=gen))
        else:
            p = 1 if crit["qk"] == "l1" else 2
            pair = torch.stack([wq, wk], dim=1)  # (H*dqk, 2, D)
            qk.append(_pnorm(pair.flatten(1), p, 1).reshape(H, dqk))
        # values
        if crit["v"] == "zero":
            v.append(torch.zeros(H, dv))
        elif crit["v"] == "snp":
            v.append(snp_v_scores(wv).reshape(H, dv))
        elif crit["v"] in ("snp-data", "snp-attn"):
            v.append(col.mean("v", i))
        elif crit["v"] == "random":
            v.append(torch.rand(H, dv, generator=gen))
        else:
            v.append(_pnorm(wv, 1 if crit["v"] == "l1" else 2, 1).reshape(H, dv))
        # FFN neurons
        fc1, fc2 = blk.mlp.fc1.weight, blk.mlp.fc2.weight
        if crit["mlp"] == "zero":
            mlp.append(torch.zeros(fc1.shape[0]))
        elif crit["mlp"] == "random":
            mlp.append(torch.rand(fc1.shape[0], generator=gen))
        elif crit["mlp"] in ("l1", "l2"):
            mlp.append(_pnorm(fc1, 1 if crit["mlp"] == "l1" else 2, 1))
        elif opts.ffn_score == "act":
            mlp.append(col.mean("mlp", i) * fc2.norm(dim=0))
        else:
            mlp.append(_pnorm(fc1, 1 if opts.ffn_score == "l1" else 2, 1))
        # whole heads
        if crit["heads"] == "zero":
            heads.append(torch.zeros(H))
        elif crit["heads"] in ("snp", "snp-data", "snp-attn"):
            heads.append(col.mean("heads", i))
        elif crit["heads"] == "random":
            heads.append(torch.rand(H, generator=gen))
        else:
            p = 1 if crit["heads"] == "l1" else 2
            rows = torch.cat([wq.reshape(H, -1), wk.reshape(H, -1), wv.reshape(H, -1)], dim=1)
            cols = attn.proj.weight.reshape(-1, H, dv).transpose(0, 1).reshape(H, -1)
            heads.append(_pnorm(torch.cat([rows, cols], dim=1), p, 1))
        # whole blocks
        if crit["blocks"] == "zero":
            block_scores.append(torch.zeros(()))
        elif crit["blocks"] in ("snp", "snp-data", "snp-attn"):
            block_scores.append(col.mean("blocks", i)[0])
        elif crit["blocks"] == "random":
            block_scores.append(torch.rand((), generator=gen))
        else:
            ws = [blk.attn.qkv.weight, blk.attn.proj.weight, fc1, fc2]
            p = 1 if crit["blocks"] == "l1" else 2
            block_scores.append(torch.stack([_pnorm(x.flatten(), p, 0) / x.numel() for x in ws]).sum())
    # residual width
    E = model.patch_embed.proj.out_channels
    if crit["embed"] == "zero":
        embed = torch.zeros(E)
    elif crit["embed"] == "random":
        embed = torch.rand(E, generator=gen)
    elif crit["embed"] not in ("l1", "l2") and opts.embed_score == "ln":
        embed = _ln_embed(model, col)
    elif crit["embed"] not in ("l1", "l2") and opts.embed_score in OUTPUT_EMBED_SCORES:
        embed = _output_embed(model, images, opts)
    else:
        base = crit["embed"] if crit["embed"] in ("l1", "l2") else opts.embed_score
        act = [col.mean("embed", i) for i in range(len(model.blocks))] if base == "act" else None
        embed = _tss_embed(model, 2 if base == "l2" else 1, act)
    return Scores(qk=qk, v=v, mlp=mlp, heads=heads, embed=embed, blocks=torch.stack(block_scores))
