"""Attention fidelity: how closely a pruned model's attention maps and logits follow the unpruned model's.

For every kept block b and every kept head h (matched to the original head through ``arch.heads_kept``):
the attention map A = softmax(q k^T * scale) (N x N, rows sum to 1) of both models on the same images;

* ``kl``: KL(A_ref row || A row), averaged over query rows, heads and images (nats; 0 = identical);
* ``cosine``: cosine similarity of the two N x N maps as vectors, averaged over heads and images (1 = identical).

Logits: KL(softmax(ref) || softmax(model)) per image, cosine of the logit vectors, and top-1 agreement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import split_qkv

EPS = 1e-12


class AttentionRecorder:
    """Context manager that records every block's attention probabilities (B, H, N, N) on each forward."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.maps: dict[int, torch.Tensor] = {}
        self.handles = []

    def __enter__(self) -> AttentionRecorder:
        for i, blk in enumerate(self.model.blocks):
            self.handles.append(blk.attn.qkv.register_forward_hook(self._hook(i, blk.attn)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _hook(self, i: int, attn: nn.Module):
        def hook(_module, _inputs, out):
            q, k, _ = split_qkv(attn, out)
            q = getattr(attn, "q_norm", nn.Identity())(q)
            k = getattr(attn, "k_norm", nn.Identity())(k)
            self.maps[i] = ((q.float() * attn.scale) @ k.float().transpose(-2, -1)).softmax(dim=-1)

        return hook


@dataclass
class Fidelity:
    """Means over images; ``blocks`` lists, per kept block, its original index and its kl / cosine."""

    attention_kl: float
    attention_cosine: float
    logits_kl: float
    logits_cosine: float
    top1_agreement: float
    images: int
    blocks: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


def block_map(model: nn.Module, arch: dict | None, reference: nn.Module) -> list[tuple[int, list[int]]]:
    """For each block of ``model``: (index of the matching reference block, reference heads it kept)."""
    if arch is None:
        return [(i, list(range(blk.attn.num_heads))) for i, blk in enumerate(model.blocks)]
    out = []
    heads_kept = arch.get("heads_kept") or []
    for j, b in enumerate(arch["blocks"]):
        heads = heads_kept[j] if j < len(heads_kept) and heads_kept[j] else list(range(b["heads"]))
        out.append((b["index"], heads))
    if any(i >= len(reference.blocks) for i, _ in out):
        raise ValueError("the reference model has fewer blocks than the pruned model's architecture names")
    return out


@torch.no_grad()
def attention_fidelity(model: nn.Module, reference: nn.Module, loader, arch: dict | None = None,
                       device: str | torch.device = "cpu", max_images: int | None = None) -> Fidelity:
    """Compare ``model`` against the unpruned ``reference`` on the images of ``loader`` ((images, targets) batches)."""
    model.eval()
    reference.eval()
    pairs = block_map(model, arch, reference)
    kl = torch.zeros(len(pairs), dtype=torch.float64)
    cos = torch.zeros(len(pairs), dtype=torch.float64)
    logit_kl = logit_cos = agree = 0.0
    n = 0
    for images, _ in loader:
        if max_images is not None and n >= max_images:
            break
        if max_images is not None:
            images = images[: max_images - n]
        images = images.to(device)
        with AttentionRecorder(model) as rec:
            logits = model(images).float()
        with AttentionRecorder(reference) as ref_rec:
            ref_logits = reference(images).float()
        for j, (i, heads) in enumerate(pairs):
            a = rec.maps[j]  # (B, H', N, N)
            r = ref_rec.maps[i][:, heads]
            row_kl = (r * ((r + EPS).log() - (a + EPS).log())).sum(-1)  # (B, H', N)
            kl[j] += row_kl.mean(dim=(1, 2)).double().sum().item()
            cos[j] += F.cosine_similarity(a.flatten(2), r.flatten(2), dim=-1).mean(1).double().sum().item()
        log_p, log_r = F.log_softmax(logits, -1), F.log_softmax(ref_logits, -1)
        logit_kl += (log_r.exp() * (log_r - log_p)).sum(-1).sum().item()
        logit_cos += F.cosine_similarity(logits, ref_logits, dim=-1).sum().item()
        agree += (logits.argmax(-1) == ref_logits.argmax(-1)).sum().item()
        n += len(images)
    if n == 0:
        raise ValueError("attention fidelity needs at least one image")
    blocks = [{"block": i, "heads": len(h), "kl": kl[j].item() / n, "cosine": cos[j].item() / n}
              for j, (i, h) in enumerate(pairs)]
    return Fidelity(attention_kl=(kl.sum() / (n * len(pairs))).item(),
                    attention_cosine=(cos.sum() / (n * len(pairs))).item(),
                    logits_kl=logit_kl / n, logits_cosine=logit_cos / n, top1_agreement=100 * agree / n,
                    images=n, blocks=blocks)
