"""Runners: one per candidate and backend, with a common interface.

``prepare()`` loads the model and allocates a fixed random input; ``run_block(k, warmup)`` runs ``warmup``
untimed then ``k`` timed inferences and returns the ``k`` latencies in ms; ``settings()`` says how it ran.
Times cover one synchronous inference with the input already on the device (no host<->device copies).
"""

from __future__ import annotations

import math
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snp_edge.errors import SnpEdgeError, first_line
from snp_edge.memory import check_allocation

if TYPE_CHECKING:
    from snp_edge.models import ModelHandle

BACKENDS = ("ort", "torch", "trt")


def default_threads() -> int:
    """All cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Runner(ABC):
    """Times one model on one backend."""

    backend: str

    @abstractmethod
    def prepare(self) -> None:
        """Load the model and allocate the input; call once before :meth:`run_block`."""

    @abstractmethod
    def run_block(self, k: int, warmup: int = 0) -> list[float]:
        """Run ``warmup`` untimed, then ``k`` timed inferences; the ``k`` latencies in ms."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Backend settings to record with the results (threads, providers, precision...)."""

    @abstractmethod
    def close(self) -> None:
        """Release the model and its buffers."""


def _input_shape(dims: list, batch: int, img_size: int | None, source: str) -> list[int]:
    """An ONNX input's shape with the batch set; spatial dims must be static or given by ``img_size``."""
    if isinstance(dims[0], int) and dims[0] > 0 and dims[0] != batch:
        raise SnpEdgeError(f"{source}: exported with a fixed batch of {dims[0]}; use --batch {dims[0]} "
                           "or export with a dynamic batch")
    shape = [batch]
    for i, d in enumerate(dims[1:], start=1):
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif i >= 2 and img_size:
            shape.append(img_size)
        else:
            raise SnpEdgeError(f"{source}: input dimension {i} is dynamic ({d!r}); export with a fixed image size")
    check_allocation(4 * math.prod(shape), f"an input batch of {batch} for {source}", "use a smaller --batch")
    return shape


class OrtRunner(Runner):
    """ONNX Runtime: ORT_ENABLE_ALL, sequential execution, ``threads`` intra-op threads, IO binding on the
    device (CPU, or CUDA through the CUDA execution provider). With ``export_from``, that model is first
    exported to ``onnx_path`` (``export.export_onnx``)."""

    backend = "ort"

    def __init__(self, onnx_path: Path, batch: int, threads: int, device: str = "cpu",
                 export_from: ModelHandle | None = None) -> None:
        self.path, self.batch, self.threads, self.device = onnx_path, batch, threads, device
        self.export_from = export_from
        self.session: Any = None

    def prepare(self) -> None:
        import numpy as np
        import onnxruntime as ort

        if self.export_from is not None:
            from snp_edge.export.onnx_export import export_onnx

            export_onnx(self.export_from, self.path)

        from snp_edge.engines.common.ort import ort_session

        self.session = ort_session(self.path, self.threads, self.device)
        inp = self.session.get_inputs()[0]
        dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        img_size = self.export_from.img_size if self.export_from is not None else None
        shape = _input_shape(inp.shape, self.batch, img_size, str(self.path))
        x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
        where = "cuda" if self.device == "cuda" else "cpu"
        self.binding = self.session.io_binding()
        self.binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(x, where, 0))
        for out in self.session.get_outputs():
            self.binding.bind_output(out.name, where)
        self.input_shape = shape

    def run_block(self, k: int, warmup: int = 0) -> list[float]:
        run, binding = self.session.run_with_iobinding, self.binding
        for _ in range(warmup):
            run(binding)
        times = []
        for _ in range(k):
            t0 = time.perf_counter()
            run(binding)
            times.append((time.perf_counter() - t0) * 1e3)
        return times

    def settings(self) -> dict[str, Any]:
        return {
            "providers": self.session.get_providers() if self.session else None,
            "intra_op_num_threads": self.threads,
            "inter_op_num_threads": 1,
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "execution_mode": "ORT_SEQUENTIAL",
            "io_binding": True,
            "input_shape": getattr(self, "input_shape", None),
        }

    def close(self) -> None:
        self.session = self.binding = None


class TorchRunner(Runner):
    """PyTorch eager under ``inference_mode``: CPU timed with ``perf_counter``; CUDA timed with CUDA events,
    synchronizing before and after each run so runs do not overlap."""

    backend = "torch"

    def __init__(self, handle: ModelHandle, batch: int, threads: int, device: str = "cpu",
                 fp16: bool = False) -> None:
        self.handle, self.batch, self.threads, self.device, self.fp16 = handle, batch, threads, device, fp16

    def prepare(self) -> None:
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise SnpEdgeError("--device cuda: torch sees no CUDA GPU here")
        torch.set_num_threads(self.threads)  # process-wide: the same for every torch candidate
        dtype = torch.float16 if self.fp16 else torch.float32
        h = self.handle
        check_allocation(4 * self.batch * h.in_chans * h.img_size ** 2, f"an input batch of {self.batch}",
                         "use a smaller --batch")
        self.model = h.model.eval().to(device=self.device, dtype=dtype)
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(self.batch, h.in_chans, h.img_size, h.img_size, generator=gen).to(self.device, dtype)

    def run_block(self, k: int, warmup: int = 0) -> list[float]:
        import torch

        model, x = self.model, self.x
        times = []
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            if self.device == "cuda":
                torch.cuda.synchronize()
                for _ in range(k):
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    model(x)
                    end.record()
                    end.synchronize()
                    times.append(start.elapsed_time(end))
            else:
                for _ in range(k):
                    t0 = time.perf_counter()
                    model(x)
                    times.append((time.perf_counter() - t0) * 1e3)
        return times

    def settings(self) -> dict[str, Any]:
        import torch

        return {
            "device": self.device,
            "precision": "fp16" if self.fp16 else "fp32",
            "torch_threads": torch.get_num_threads(),
            "inference_mode": True,
            "timer": "cuda_events" if self.device == "cuda" else "perf_counter",
        }

    def close(self) -> None:
        self.model = self.x = None


class TrtRunner(Runner):
    """A serialized TensorRT engine loaded once with ``engines.runtime.EngineRunner`` (sidecar checked),
    timed like ``engines.runtime.time_engine``: CUDA events around one enqueue, waited for before the next;
    the input stays on the device."""

    backend = "trt"

    def __init__(self, engine_path: Path, batch: int) -> None:
        self.path, self.batch = engine_path, batch
        self.runner: Any = None

    def prepare(self) -> None:
        import numpy as np
        from snp_edge.engines.common.errors import EnginesError
        from snp_edge.engines.runtime import EngineRunner

        try:
            self.runner = EngineRunner(str(self.path))
            self.runner.prepare(self.batch)
            self.runner.upload(np.random.RandomState(0).standard_normal(self.runner.input_shape(self.batch)))
        except (EnginesError, ImportError, OSError) as exc:
            msg = first_line(exc)
            raise SnpEdgeError(msg if str(self.path) in msg else f"{self.path}: {msg}") from None

    def run_block(self, k: int, warmup: int = 0) -> list[float]:
        from snp_edge.engines.runtime import time_runs

        return time_runs(self.runner, warmup, k)

    def settings(self) -> dict[str, Any]:
        sidecar = (self.runner.sidecar if self.runner else None) or {}
        return {"engine": str(self.path), "timer": "cuda events per run (no host<->device copies)",
                **{k: sidecar.get(k) for k in ("precision", "trt_version", "gpu_name", "profile")}}

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None
