"""Knowledge-distillation losses: soft (Hinton KL with temperature) and DeiT's hard distillation.

For a student with a distillation token (timm ``*_distilled_*`` models in distilled-training mode) the
forward returns ``(cls_logits, dist_logits)``: the label loss uses the class head and the distillation
loss the distillation head, as in DeiT. Otherwise both losses use the one output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import KD_KINDS


def soft_distillation(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 * KL(softmax(teacher / tau) || softmax(student / tau)), averaged over the batch.

    student, teacher: (B, C) logits. The tau^2 factor keeps gradient magnitudes independent of tau (Hinton).
    """
    log_p_s = F.log_softmax(student.float() / tau, dim=-1)
    log_p_t = F.log_softmax(teacher.float() / tau, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * tau * tau


def hard_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student (B, C) against the teacher's arg-max labels (DeiT hard distillation)."""
    return F.cross_entropy(student.float(), teacher.argmax(dim=-1))


class DistillationLoss(nn.Module):
    """``(1 - alpha) * base(cls, targets) + alpha * kd(dist, teacher(inputs))``; ``base`` alone without a teacher.

    Args:
        base: label loss, e.g. timm's SoftTargetCrossEntropy (mixup) or LabelSmoothingCrossEntropy.
        teacher: frozen model in eval mode, or None.
        kind: "none", "soft" or "hard".
        alpha: weight of the distillation term.
        tau: temperature of the soft term.
    """

    def __init__(self, base: nn.Module, teacher: nn.Module | None = None, kind: str = "soft",
                 alpha: float = 0.5, tau: float = 1.0) -> None:
        super().__init__()
        if kind not in KD_KINDS:
            raise ValueError(f"unknown distillation {kind!r}")
        self.base = base
        self.teacher = teacher if kind != "none" else None
        self.kind, self.alpha, self.tau = kind, alpha, tau
        if self.teacher is not None:
            self.teacher.requires_grad_(False).eval()

    def forward(self, inputs: torch.Tensor, outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
                targets: torch.Tensor) -> torch.Tensor:
        """inputs (B, C, H, W) as fed to the student; outputs (B, K) or a (cls, dist) pair; targets (B,) or (B, K)."""
        cls, dist = outputs if isinstance(outputs, tuple) else (outputs, outputs)
        loss = self.base(cls, targets)
        if self.teacher is None:
            return loss
        with torch.no_grad():
            teacher = self.teacher(inputs)
        kd = (soft_distillation(dist, teacher, self.tau) if self.kind == "soft"
              else hard_distillation(dist, teacher))
        return (1 - self.alpha) * loss + self.alpha * kd
