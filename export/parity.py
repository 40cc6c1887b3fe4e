"""ONNX Runtime (CPU) against PyTorch on the same inputs: the export's correctness gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

FP32_ATOL = 1e-4  # max abs logit error allowed between ONNX Runtime and PyTorch in FP32


@dataclass
class Parity:
    """Agreement of two sets of logits (N, classes)."""

    batch: int
    max_abs: float
    max_rel: float  # max |a - b| / max(|b|, 1e-3): relative to the reference logit, floored
    top1_agreement: float  # fraction of images whose arg-max class matches

    def to_dict(self) -> dict:
        return asdict(self)


def compare(out: np.ndarray, ref: np.ndarray, batch: int) -> Parity:
    """Parity of ``out`` against the reference ``ref`` (same shape)."""
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    rel = diff / np.maximum(np.abs(ref), 1e-3)
    top1 = float(np.mean(out.argmax(-1) == ref.argmax(-1)))
    return Parity(batch, float(diff.max()), float(rel.max()), top1)


def ort_session(path: str, threads: int | None = None) -> ort.InferenceSession:
    """A CPU ONNX Runtime session with full graph optimisation."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def run_ort(session: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    return session.run(["logits"], {"input": images.astype(np.float32)})[0]


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
        results.append(compare(run_ort(session, x.numpy()), model(x).numpy(), batch))
    return results
