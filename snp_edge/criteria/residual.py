"""Residual-width (embedding) criteria that measure what removing channels does to the model's output.

Removing residual channel c from a pre-norm ViT does more than drop the weights that read and write it:
every LayerNorm then computes its mean and variance over the channels that remain, so every token of every
block is renormalised. :class:`ResidualMask` simulates that exactly on the unpruned model (for a 0/1 mask
the logits equal those of the pruned model), and for a mask between 0 and 1 it is differentiable: the
LayerNorm statistics are weighted by the mask, so gradients see the renormalisation too.

Criteria built on it (``--embed-score``):

``kl``
    A second-order estimate of how far the model's class probabilities move from the unpruned model's
    (KL divergence, no labels needed) when a set S of channels is removed:
    ``D(1 - 1_S) ~ D(m) - g.1_S + 1/2 1_S^T F 1_S`` with ``g`` the gradient of the KL divergence in the mask
    and ``F`` its Gauss-Newton matrix (the Fisher information of the model's own predictive distribution:
    exact over the classes up to :data:`EXACT_CLASSES`, sampled beyond), both at the current mask. Channels
    are removed ``chunk`` at a time, each chunk chosen greedily on the quadratic form (so channels that
    matter together are not removed together, as in Optimal Brain Surgeon's group estimates), and ``g``,
    ``F`` are measured again after each chunk, down to ``floor``; the channels left are ordered by the last
    estimate. Measured against l1, l2, random and single-channel criteria in docs/accuracy.md.
``fisher``
    The diagonal Fisher estimate at the unpruned model (no re-estimation): sum over images of
    ``(dL/dm_c)^2``, L the cross-entropy against the model's own prediction.
``ablation``
    The KL divergence of the output when channel c alone is removed (exactly, LayerNorm statistics
    included), on :data:`ABLATION_IMAGES` images.

All three order the channels. The value each channel gets is the ``l1`` score of the channel at the same
rank (:func:`rank_onto`): which channels go is the criterion's choice, while how the residual width weighs
against the other components in the score-driven allocation stays that of the weight-norm rule, so a
criterion whose values live on another scale does not change how many channels are removed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import SnpEdgeError

EXACT_CLASSES = 16  # up to this many classes the Fisher matrix sums over every class; beyond, it samples
SAMPLES = 8  # labels sampled per image for the Fisher matrix beyond EXACT_CLASSES
ABLATION_IMAGES = 16  # images per channel for --embed-score ablation


def _fit(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The mask ``w`` ((E,) or per image (B, 1, E)) shaped to broadcast against ``x`` (B, ..., E)."""
    if w.dim() == 1:
        return w
    return w.reshape(w.shape[0], *([1] * (x.dim() - 2)), w.shape[-1])


class ResidualMask:
    """Context manager: ``model`` (a timm ViT, pruned or not) with its residual stream multiplied by
    ``mask`` ((E,), or (B, 1, E): one mask per image of the batch) and every LayerNorm over the stream
    normalising over the masked channels only (mean and variance weighted by the mask).

    With a 0/1 mask the output equals that of the model with the zero channels pruned. The stream is masked
    where it is formed (after the position embedding) and wherever a sublayer writes into it (attention
    ``proj``, FFN ``fc2``); the LayerNorms (``norm_pre``, ``norm1``, ``norm2``, ``norm``, ``fc_norm``) output
    zeros on masked channels. The mask tensor is read at every call, so it may be changed in place.
    """

    def __init__(self, model: nn.Module, mask: torch.Tensor) -> None:
        E = model.patch_embed.proj.out_channels
        if mask.dim() not in (1, 3) or mask.shape[-1] != E or (mask.dim() == 3 and mask.shape[1] != 1):
            raise SnpEdgeError(f"residual mask of shape {tuple(mask.shape)}: expected ({E},) or (B, 1, {E})")
        if not bool((mask.detach() > 0).any(-1).all()):
            raise SnpEdgeError("a residual mask must keep at least one channel (LayerNorm over nothing)")
        self.model, self.mask = model, mask
        self.handles: list = []

    def _mul(self, _module, _inputs, out):
        return out * _fit(self.mask, out)

    def _norm(self, module: nn.LayerNorm, inputs, _out):
        x = inputs[0]
        w = _fit(self.mask, x)
        count = w.sum(-1, keepdim=True)
        mean = (x * w).sum(-1, keepdim=True) / count
        var = ((x - mean) ** 2 * w).sum(-1, keepdim=True) / count
        y = (x - mean) / torch.sqrt(var + module.eps)
        if module.weight is not None:
            y = y * module.weight
        if module.bias is not None:
            y = y + module.bias
        return y * w

    def __enter__(self) -> ResidualMask:
        model = self.model
        norms = [getattr(model, n, None) for n in ("norm_pre", "norm", "fc_norm")]
        for blk in model.blocks:
            norms += [blk.norm1, blk.norm2]
            self.handles += [blk.attn.proj.register_forward_hook(self._mul),
                             blk.mlp.fc2.register_forward_hook(self._mul)]
        self.handles.append(model.patch_drop.register_forward_hook(self._mul))
        self.handles += [n.register_forward_hook(self._norm) for n in norms if isinstance(n, nn.LayerNorm)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def _batches(images: torch.Tensor, batch_size: int):
    return [images[i:i + batch_size] for i in range(0, len(images), batch_size)]


@torch.no_grad()
def reference_log_probs(model: nn.Module, images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``model``'s class log-probabilities on ``images``, one (B, classes) tensor per batch."""
    return [logits(model, x).log_softmax(-1) for x in _batches(images, batch_size)]


@torch.no_grad()
def output_kl(model: nn.Module, images: torch.Tensor, reference: list[torch.Tensor], batch_size: int) -> float:
    """KL(reference || model) of the class probabilities on ``images``, mean over images, in nats
    (``reference`` from :func:`reference_log_probs` with the same ``batch_size``)."""
    total = sum(torch.nn.functional.kl_div(logits(model, x).log_softmax(-1), ref, log_target=True, reduction="sum")
                for x, ref in zip(_batches(images, batch_size), reference, strict=True))
    return float(total) / len(images)


def kl_curvature(model: nn.Module, images: torch.Tensor, reference: list[torch.Tensor], mask: torch.Tensor,
                 batch_size: int = 16, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ``g`` (E,) and Gauss-Newton matrix ``F`` (E, E) (float64, means over images) in the mask of
    the KL divergence KL(p_ref || p_mask) of the class probabilities, at ``mask`` (E,).

    ``F = E_x sum_y p(y|x) grad log p(y|x) grad log p(y|x)^T`` (the Fisher information of the masked model's
    own predictions, the KL divergence's Gauss-Newton matrix); per-image gradients come from one mask copy per
    image. Exact over the classes up to :data:`EXACT_CLASSES`, else :data:`SAMPLES` sampled labels per image.
    """
    E = mask.numel()
    g = torch.zeros(E, dtype=torch.float64)
    fisher = torch.zeros(E, E, dtype=torch.float64)
    with torch.enable_grad():
        for x, ref in zip(_batches(images, batch_size), reference, strict=True):
            m = mask.detach().expand(len(x), 1, E).clone().requires_grad_(True)
            with ResidualMask(model, m):
                logp = logits(model, x).log_softmax(-1)
            kl = torch.nn.functional.kl_div(logp, ref, log_target=True, reduction="sum")
            g += torch.autograd.grad(kl, m, retain_graph=True)[0].sum((0, 1)).double()
            p = logp.detach().exp()
            C = logp.shape[-1]
            if C <= EXACT_CLASSES:
                picks = [(torch.full((len(x), 1), c), p[:, c:c + 1]) for c in range(C)]
            else:
                ys = torch.multinomial(p, SAMPLES, replacement=True, generator=generator)
                picks = [(ys[:, s:s + 1], torch.full((len(x), 1), 1.0 / SAMPLES)) for s in range(SAMPLES)]
            for j, (y, weight) in enumerate(picks):
                gy = torch.autograd.grad(logp.gather(1, y).sum(), m, retain_graph=j < len(picks) - 1)[0][:, 0]
                gy = gy.double()
                fisher += (gy * weight.double()).T @ gy
    n = len(images)
    return g / n, fisher / n


def greedy_quadratic(g: torch.Tensor, fisher: torch.Tensor, candidates: list[int], k: int) -> list[int]:
    """``k`` of ``candidates`` whose joint removal raises ``-g.1_S + 1/2 1_S^T F 1_S`` least, chosen one at a
    time (each step adds the channel of least increase given those already chosen), in the order chosen."""
    rise = -g + 0.5 * fisher.diagonal()
    allowed = torch.zeros_like(rise, dtype=torch.bool)
    allowed[candidates] = True
    chosen: list[int] = []
    for _ in range(min(k, len(candidates))):
        c = int(torch.where(allowed, rise, torch.inf).argmin())
        chosen.append(c)
        allowed[c] = False
        rise = rise + fisher[c]
    return chosen


def kl_order(model: nn.Module, images: torch.Tensor, batch_size: int = 16, chunk: int | None = None,
             floor: int | None = None, seed: int = 0) -> list[int]:
    """Residual channels in the order ``--embed-score kl`` removes them (least important first), all E.

    ``chunk`` channels are removed per estimate (default E/12), re-estimated down to ``floor`` kept channels
    (default E/2); the rest follow in the order of the last estimate. Costs (E - floor) / chunk + 1
    estimates, each a forward pass over the images and one backward pass per class (or sample).
    """
    E = model.patch_embed.proj.out_channels
    chunk = max(1, round(E / 12)) if chunk is None else chunk
    floor = math.ceil(E / 2) if floor is None else floor
    if chunk < 1 or not 1 <= floor <= E:
        raise SnpEdgeError(f"kl_order: chunk must be >= 1 and floor in 1..{E}, got chunk {chunk}, floor {floor}")
    if images is None or len(images) == 0:
        raise SnpEdgeError("--embed-score kl needs calibration images")
    ref = reference_log_probs(model, images, batch_size)
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(E)
    order: list[int] = []
    while True:
        g, fisher = kl_curvature(model, images, ref, mask, batch_size, gen)
        kept = mask.nonzero().flatten().tolist()
        if len(kept) <= floor:
            return order + greedy_quadratic(g, fisher, kept, len(kept))
        drop = greedy_quadratic(g, fisher, kept, min(chunk, len(kept) - floor))
        mask[drop] = 0
        order += drop


def fisher_scores(model: nn.Module, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """``--embed-score fisher``: sum over images of (dL/dm_c)^2 at the unpruned model, L the cross-entropy
    against the model's own prediction (Kwon et al., 2022), LayerNorm statistics included. (E,)"""
    E = model.patch_embed.proj.out_channels
    fisher = torch.zeros(E, dtype=torch.float64)
    with torch.enable_grad():
        for x in _batches(images, batch_size):
            m = torch.ones(len(x), 1, E, requires_grad=True)
            with ResidualMask(model, m):
                out = logits(model, x)
            loss = torch.nn.functional.cross_entropy(out, out.argmax(-1).detach(), reduction="sum")
            fisher += (torch.autograd.grad(loss, m)[0][:, 0].double() ** 2).sum(0)
    return fisher.float()


@torch.no_grad()
def ablation_scores(model: nn.Module, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """``--embed-score ablation``: KL divergence of the class probabilities from the unpruned model's with
    channel c alone removed (exactly), over the first :data:`ABLATION_IMAGES` images. (E,)"""
    images = images[:ABLATION_IMAGES]
    E = model.patch_embed.proj.out_channels
    ref = reference_log_probs(model, images, batch_size)
    mask = torch.ones(E)
    scores = torch.zeros(E)
    with ResidualMask(model, mask):
        for c in range(E):
            mask[c] = 0
            scores[c] = output_kl(model, images, ref, batch_size)
            mask[c] = 1
    return scores


def rank_onto(order: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` re-assigned by rank: the channel ranked k-th by ``order`` (higher = more important) gets the
    k-th smallest of ``values``. Ties in ``order`` keep index order. (E,)"""
    ranks = torch.sort(order, stable=True).indices
    out = torch.empty_like(values)
    out[ranks] = torch.sort(values).values
    return out


def order_scores(order: list[int], E: int) -> torch.Tensor:
    """A removal order (least important first) as scores: the k-th removed gets k. (E,)"""
    scores = torch.empty(E)
    scores[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order), dtype=torch.float32)
    return scores
