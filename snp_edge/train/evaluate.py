"""Top-1 / top-5 accuracy, loss and throughput of a PyTorch model or an ONNX file on an image loader."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..errors import SnpEdgeError
from ..progress import bar


@dataclass
class EvalResult:
    """Accuracy in percent; ``loss`` is the mean cross-entropy; ``images_per_s`` counts forward time only."""

    top1: float
    top5: float
    loss: float
    images: int
    forward_s: float
    images_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def _all_reduce(values: list[float], device: torch.device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def evaluate(predict: Callable[[torch.Tensor], torch.Tensor], loader, device: str | torch.device = "cpu",
             progress: bool = False, desc: str = "eval") -> EvalResult:
    """Run ``predict`` (images (B, C, H, W) -> logits (B, K)) over ``loader``; sums over processes under DDP."""
    device = torch.device(device)
    correct1 = correct5 = loss_sum = n = 0.0
    forward_s = 0.0
    for images, targets in bar(loader, desc=desc, unit="batch", disable=not progress):
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        logits = predict(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        forward_s += time.perf_counter() - start
        logits = logits.float().to(device)
        k = min(5, logits.shape[-1])
        top = logits.topk(k, dim=-1).indices
        hit = top == targets[:, None]
        correct1 += hit[:, 0].sum().item()
        correct5 += hit.any(dim=-1).sum().item()
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
        n += len(targets)
    correct1, correct5, loss_sum, n, forward_s = _all_reduce([correct1, correct5, loss_sum, n, forward_s], device)
    if n == 0:
        raise SnpEdgeError("evaluation data holds no images")
    return EvalResult(top1=100 * correct1 / n, top5=100 * correct5 / n, loss=loss_sum / n, images=int(n),
                      forward_s=forward_s, images_per_s=n / max(forward_s, 1e-9))


def torch_predictor(model: nn.Module, amp_dtype: torch.dtype | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` in eval mode as a predictor, under autocast when ``amp_dtype`` is given (CUDA)."""
    model.eval()

    def predict(x: torch.Tensor) -> torch.Tensor:
        if amp_dtype is not None:
            with torch.autocast(x.device.type, dtype=amp_dtype):
                return model(x)
        return model(x)

    return predict


def onnx_predictor(path: str | Path) -> tuple[Callable[[torch.Tensor], torch.Tensor], tuple[int, int, int]]:
    """An ONNX Runtime (CPU) predictor for an exported model, and its (C, H, W) input size."""
    from ..engines.common.ort import ort_session, run_logits

    session = ort_session(str(path))
    inp = session.get_inputs()[0]
    shape = inp.shape
    if inp.name != "input" or len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
        raise SnpEdgeError(f"{path}: expected an snp-edge export with input 'input' (N, C, H, W); got {inp.name} {shape}")

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(run_logits(session, x.cpu().numpy()))

    return predict, tuple(shape[1:])
