"""ONNX Runtime (CPU) against PyTorch on the same inputs: the export's correctness gate.

The comparison itself is the project's one logit comparison, :func:`snp_edge.engines.verify.compare_logits`
(the device's engine verification uses it too); this module adds the FP32 export gate on its result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from snp_edge.engines.ort import ort_session, run_logits
from snp_edge.engines.verify import Tolerance, compare_logits
from torch import nn

FP32_ATOL = 1e-4  # max abs logit error allowed between ONNX Runtime and PyTorch in FP32


@dataclass
class Parity:
    """Agreement of ONNX Runtime logits with PyTorch's at one batch size (see ``compare_logits``)."""

    batch: int
    max_abs: float
    max_rel: float | None  # over logits with |reference| >= 1% of the logit scale
    top1_agreement: float
    finite: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def compare(out: np.ndarray, ref: np.ndarray, batch: int) -> Parity:
    """Parity of ``out`` against the reference ``ref`` (same shape)."""
    report = compare_logits(out, ref, Tolerance(atol_frac=0.0, min_top1=0.0))
    return Parity(batch, report["max_abs_err"], report["max_rel_err"], report["top1_agreement"], report["finite"])


@torch.no_grad()
def check_parity(path: str, model: nn.Module, images: torch.Tensor, batches: tuple[int, ...] = (1, 8)) -> list[Parity]:
    """Run ``images`` through the ONNX file and ``model`` at each batch size; one :class:`Parity` per size."""
    session = ort_session(path)
    model = model.eval()
    results = []
    for batch in batches:
        x = images[:batch]
        if len(x) < batch:
            x = x.repeat((batch + len(x) - 1) // len(x), 1, 1, 1)[:batch]
        results.append(compare(run_logits(session, x.numpy()), model(x).numpy(), batch))
    return results
