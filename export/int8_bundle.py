"""The INT8 part of ``snp-edge bundle --precision int8`` (and ``export`` / ``run``): the verified FP32 ONNX is
quantised for the target (:func:`export.quantize.quantize_for_target`, gated on the bundle's golden inputs,
which are the calibration images), the FP32 logits kept as ``golden/outputs_fp32.npy``, and the manifest's
``quantization`` block written (schema: :mod:`snp_edge.engines.quantization`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from snp_edge.engines.common.ort import ort_session, run_logits
from snp_edge.engines.common.targets import check_precision

from .quantize import DEFAULT_GATE, GateThresholds, quantize_for_target

FP32_OUTPUTS = "golden/outputs_fp32.npy"
PRECISIONS = ("fp32", "fp16", "int8")  # host --precision: fp32/fp16 = a float ONNX, int8 = the Q/DQ ONNX


@dataclass
class Int8Options:
    """How an INT8 model is made: quantizer (None: the target's), calibration method (None: the quantizer's),
    the gate's thresholds, and whether the gate runs."""

    quantizer: str | None = None
    method: str | None = None
    thresholds: GateThresholds = DEFAULT_GATE
    gate: bool = True


def check_int8(target: str | None, precision: str) -> None:
    """Refuse, before any work, INT8 for a target without it (``jetson-nano``) or without a target."""
    from snp_edge.errors import SnpEdgeError

    if precision not in PRECISIONS:
        raise SnpEdgeError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    if precision == "int8":
        if not target:
            raise SnpEdgeError("--precision int8 needs --target: the Q/DQ placement depends on the device's runtime")
        check_precision(target, "int8")


def quantize_bundle_model(folder: Path, inputs: np.ndarray, fp32_outputs: np.ndarray, target: str,
                          options: Int8Options) -> tuple[np.ndarray, dict]:
    """Replace ``folder/model.onnx`` (FP32) by its INT8 Q/DQ model calibrated and gated on ``inputs`` (the
    golden inputs); save the FP32 logits ``fp32_outputs`` to ``folder/golden/outputs_fp32.npy``. Returns
    (the INT8 model's ONNX Runtime logits on ``inputs``, the manifest's ``quantization`` block)."""
    model = folder / "model.onnx"
    fp32 = folder / ".model.fp32.onnx"
    shutil.move(str(model), str(fp32))
    try:
        result = quantize_for_target(fp32, model, inputs, target, options.quantizer, options.method,
                                     options.thresholds, gate=options.gate)
    finally:
        fp32.unlink(missing_ok=True)
    # the Q/DQ graph's own semantics (ONNX Runtime's basic optimisations: Q/DQ computed as written, no int8
    # kernel fusions), which every runtime approximates: ONNX Runtime's x86 and ARM64 int8 kernels within
    # 0.02-0.03 x the logit scale for the ort placement (7-bit weights: no AVX2 saturation; docs/int8.md)
    outputs = run_logits(ort_session(str(model), optimization="basic"), inputs)
    (folder / "golden").mkdir(exist_ok=True)
    np.save(folder / FP32_OUTPUTS, np.ascontiguousarray(fp32_outputs, dtype=np.float32))
    gate = {k: v for k, v in result.gate.items() if k not in ("flips",)} if result.gate else {}
    block = {"precision": "int8", "quantizer": result.quantizer, "method": result.method,
             "calib_images": result.calib_images, "qdq_nodes": result.qdq_nodes, "fp32_outputs": FP32_OUTPUTS,
             "gate": gate}
    return outputs, block


def top_k_of(logits: np.ndarray, k: int = 5) -> dict:
    """``golden.top_k`` from logits (the INT8 model's: its own softmax is what the device must reproduce)."""
    k = min(k, logits.shape[1])
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ids = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return {"k": k, "class_ids": ids.tolist(),
            "probs": [[round(float(p[i, j]), 8) for j in row] for i, row in enumerate(ids)],
            "source": "onnxruntime int8 (the quantised model.onnx)"}
