"""KD losses against a hand computation, and how DistillationLoss combines them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snp_edge.train.distill import DistillationLoss, hard_distillation, soft_distillation


def _softmax(row: list[float]) -> list[float]:
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def test_soft_distillation_matches_hand_computation():
    student = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    teacher = [[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    tau = 2.0
    expected = 0.0
    for s, t in zip(student, teacher, strict=True):
        ps, pt = _softmax([v / tau for v in s]), _softmax([v / tau for v in t])
        expected += sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps, strict=True))
    expected = expected / len(student) * tau * tau
    got = soft_distillation(torch.tensor(student), torch.tensor(teacher), tau)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert soft_distillation(torch.tensor(teacher), torch.tensor(teacher), tau).item() == pytest.approx(0, abs=1e-7)


def test_hard_distillation_is_cross_entropy_on_teacher_argmax():
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    teacher = torch.tensor([[0.0, 0.0, 5.0], [4.0, 1.0, 1.0]])  # arg-max 2 and 0
    expected = (-math.log(_softmax([1.0, 2.0, 0.5])[2]) - math.log(_softmax([0.0, -1.0, 3.0])[0])) / 2
    assert hard_distillation(student, teacher).item() == pytest.approx(expected, rel=1e-6)


class _Fixed(nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_distillation_loss_mixes_base_and_kd_and_uses_dist_head():
    cls = torch.tensor([[1.0, 0.0, 0.0]])
    dist = torch.tensor([[0.0, 2.0, 0.0]])
    teacher_logits = torch.tensor([[0.0, 0.0, 3.0]])
    targets = torch.tensor([0])
    x = torch.zeros(1, 3, 4, 4)
    ce = nn.CrossEntropyLoss()
    loss = DistillationLoss(ce, _Fixed(teacher_logits), "soft", alpha=0.25, tau=1.0)((x), (cls, dist), targets)
    expected = 0.75 * ce(cls, targets) + 0.25 * soft_distillation(dist, teacher_logits, 1.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    hard = DistillationLoss(ce, _Fixed(teacher_logits), "hard", alpha=0.5)(x, cls, targets)
    assert hard.item() == pytest.approx((0.5 * ce(cls, targets) + 0.5 * ce(cls, torch.tensor([2]))).item(), rel=1e-6)
    assert DistillationLoss(ce, None, "none")(x, cls, targets).item() == pytest.approx(ce(cls, targets).item())
