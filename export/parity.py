"""ONNX Runtime (CPU) against PyTorch on the same inputs: the export's correctness gate.

The comparison itself is the project's one logit comparison, :func:`snp_edge.engines.verify.compare_logits`
(the device's engine verification uses it too); this module adds the FP32 export gate on its result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from snp_edge.engines.common.ort import ort_session, run_logits
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
def check_parity(path: str, model: nn.Module, images: torch.Tensor, batches: tuple[int, ...] = (1, 8),
                 onnx_inputs: np.ndarray | None = None, output_name: str = "logits") -> list[Parity]:
    """Run every image through the ONNX file (in batches of each size) and ``model``; one :class:`Parity` per size.

    ``images`` are what ``model`` takes; ``onnx_inputs`` what the ONNX takes for the same images when its input
    form differs (normalisation folded in; default: ``images``). Fewer images than a batch are repeated.
    """
    session = ort_session(path)
    model = model.eval()
    feeds = images.numpy() if onnx_inputs is None else onnx_inputs
    reference = model(images).numpy()
    results = []
    for batch in batches:
        count = max(batch, -(-len(images) // batch) * batch)  # whole batches covering every image
        rows = np.arange(count) % len(images)
        out = np.concatenate([run_logits(session, feeds[rows[i:i + batch]], output_name=output_name)
                              for i in range(0, count, batch)])
        results.append(compare(out, reference[rows], batch))
    return results
