"""INT8 rows beside the FP32 ones in a benchmark (``snp-edge run --precision int8``, ``compare --precision
int8``): each model's FP32 ONNX is quantised with ONNX Runtime's own Q/DQ placement (``export/quantize.py``
``ort``: what the CPU targets run) and benchmarked as its own candidate, labelled ``<label> INT8``, on the
same ONNX Runtime CPU backend, interleaved with the FP32 rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .candidates import Candidate

INT8_SUFFIX = " INT8"


def noise_calibration(shape: tuple[int, ...], rows: int = 8, seed: int = 0) -> np.ndarray:
    """Seeded standard-normal (rows, C, H, W) calibration inputs, for models without calibration images."""
    return np.random.default_rng(seed).standard_normal((rows, *shape[1:])).astype(np.float32)


def int8_candidate(cand: Candidate, fp32_onnx: Path, int8_onnx: Path, calib: np.ndarray, gate: bool = False,
                   thresholds=None) -> Candidate:
    """``cand``'s INT8 twin: ``fp32_onnx`` quantised (``ort``, minmax on ``calib``, (N, C, H, W) float32 in the
    ONNX's input form) into ``int8_onnx``, gated against FP32 when ``gate`` (exit 1 below ``thresholds``)."""
    from snp_edge.export.quantize import DEFAULT_GATE, quantize_onnx

    q = quantize_onnx(fp32_onnx, int8_onnx, calib, "ort", thresholds=thresholds or DEFAULT_GATE, gate=gate)
    quant = {"quantizer": q.quantizer, "method": q.method, "calib_images": q.calib_images, "qdq_nodes": q.qdq_nodes,
             "gate": "passed" if q.gate else "skipped"}
    return replace(cand, label=cand.label + INT8_SUFFIX, source=str(int8_onnx), kind="onnx", path=Path(int8_onnx),
                   extra={**cand.extra, "precision": "int8", "fp32_label": cand.label, "quantization": quant})


def with_int8(cands: list[Candidate], int8: list[Candidate]) -> list[Candidate]:
    """The candidates in report order: each FP32 row followed by its INT8 twin (matched by label)."""
    twins = {c.extra["fp32_label"]: c for c in int8}
    return [x for c in cands for x in ([c, twins[c.label]] if c.label in twins else [c])]
