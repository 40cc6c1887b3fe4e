"""Sensitivity probes: the loss of the unpruned model cut to given widths, for the allocator's ``loss`` group
weights (:func:`snp_edge.allocation.measure_loss`).

A probe is called up to ``len(PROBE_KEPT)`` times per group (111 times on a 12-block ViT), each time on a
model cut by :func:`~snp_edge.surgery.apply_widths` with the scores that choose the kept units.
"""

from __future__ import annotations

import torch

from .allocation import PROBE_KEPT
from .arch import Arch
from .criteria import Scores
from .criteria.residual import output_kl, reference_log_probs
from .models import ModelHandle
from .progress import bar
from .surgery import apply_widths

PROBE_IMAGES = (8, 32)  # fewest, most calibration images a probe runs on (the first ones)
PROBE_GMACS = 40.0  # forward work per probe, at most above the fewest images: DeiT-S (4.6 GMACs) 8 images, 111
# probes in about a minute on 2 quiet CPU cores; the MNIST ViTs of docs/accuracy.md (0.012 GMACs) 32 images


def probe_images(gmacs: float) -> int:
    """Calibration images per probe for a model of ``gmacs`` GMACs per image."""
    lo, hi = PROBE_IMAGES
    return max(lo, min(hi, int(PROBE_GMACS / max(gmacs, 1e-9))))


class KLProbe:
    """KL(unpruned || cut) of the class predictions on the first :func:`probe_images` of ``images``
    (N, C, H, W), mean over images, in nats.

    The unpruned model's log-probabilities are computed once; the probe of the unpruned widths is 0.
    ``progress``: a bar over the probes (closed by :meth:`close`)."""

    def __init__(self, handle: ModelHandle, scores: Scores, images: torch.Tensor, batch_size: int = 16,
                 progress: bool = False) -> None:
        self.images = images[:probe_images(handle.gmacs)]
        self.handle, self.scores, self.batch_size = handle, scores, batch_size
        self.reference = reference_log_probs(handle.model.eval(), self.images, batch_size)
        groups = 1 + 3 * len(handle.model.blocks)  # residual width + (qk, v, mlp) per block: at most
        self.bar = bar(total=groups * len(PROBE_KEPT), desc="sensitivity", unit="probe", disable=not progress)

    def __call__(self, arch: Arch) -> float:
        cut = apply_widths(self.handle, arch, self.scores).model.eval()
        loss = output_kl(cut, self.images, self.reference, self.batch_size)
        self.bar.update()
        return loss

    def close(self) -> None:
        self.bar.close()
