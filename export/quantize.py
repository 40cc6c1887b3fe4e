"""Post-training INT8 quantisation of an exported ONNX model, with an accuracy gate against the FP32 model.

Two quantisers, one per runtime (a registry; the device target names its own in ``engines/targets.py``):

============  ===========================================================================================
``ort``       ONNX Runtime's ``quantize_static``: QDQ, per-channel symmetric 7-bit int8 weights
              (``reduce_range``), asymmetric uint8 activations, only the weight GEMMs (MatMul/Gemm/Conv with
              a constant weight; the attention's activation x activation MatMuls and everything around them
              stay FP32), their outputs left in FP32 (no requantisation): what ONNX Runtime's CPU int8
              kernels run (x86 AVX2/VNNI, ARM64 dot-product). For the CPU targets (Raspberry Pi, ARM64
              boards). Each choice measured (docs/int8.md): quantising the attention MatMuls too made ONNX
              Runtime fuse the softmax between them into a slow ``QLinearSoftmax`` (INT8 slower than FP32 on
              the pruned models); 7-bit weights keep x86 AVX2's u8 x s8 kernels (``vpmaddubsw``, 16-bit
              saturating pair sums) from saturating, so the kernels compute the Q/DQ graph as written (within
              float rounding) on x86 and ARM alike; float GEMM outputs were faster and closer to it.
``modelopt``  NVIDIA Model Optimizer's ONNX PTQ (``modelopt.onnx.quantization.quantize``, int8 mode): the
              QDQ placement TensorRT's explicit quantisation wants (Q/DQ before Conv/Gemm/MatMul inputs;
              LayerNorm, Softmax and GELU left unquantised, in FP32 here: TensorRT's FP16 flag lowers them).
              For the TensorRT targets (Jetson Orin, RTX 3090). Needs
              ``pip install 'snp-edge[int8]'`` (Model Optimizer without its onnxruntime-gpu pin).
============  ===========================================================================================

Calibration: the calibration images (``snp_edge.calib``), activations ranged by ``entropy``, ``percentile``
(99.999th, ONNX Runtime only) or ``minmax``. The gate (:func:`accuracy_gate`) runs the FP32 and INT8 models
with ONNX Runtime on the calibration images and refuses a result whose top-1 agreement or logit error is
worse than the thresholds (recorded in the output's ONNX metadata, ``snp_edge.quantization``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from snp_edge.engines.common.errors import MissingPrerequisite
from snp_edge.engines.common.ort import ort_session, run_logits
from snp_edge.engines.verify import Tolerance, compare_logits

from snp_edge.errors import SnpEdgeError, VerificationFailed, first_line

CALIBRATION_METHODS = ("entropy", "percentile", "minmax")
QUANTIZED_OPS = ("MatMul", "Gemm", "Conv")
METADATA_KEY = "snp_edge.quantization"


@dataclass(frozen=True)
class GateThresholds:
    """The INT8 accuracy gate: top-1 agreement with FP32 at least ``min_top1`` (fraction of images) and max
    abs logit error at most ``atol_frac`` x the FP32 logit scale (largest |logit|, at least 1)."""

    min_top1: float = 0.9
    atol_frac: float = 0.5


DEFAULT_GATE = GateThresholds()


@dataclass
class Quantizer:
    """One way to place Q/DQ nodes: ``run(src, dst, calib, method)`` writes the QDQ model ``dst``."""

    name: str
    description: str
    runtime: str  # "onnxruntime" | "tensorrt": whose int8 kernels the placement is for
    methods: tuple[str, ...]  # calibration methods it supports
    default_method: str
    run: Callable[[Path, Path, np.ndarray, str], None]


@dataclass
class QuantizeResult:
    """What :func:`quantize_onnx` wrote and how the INT8 model compares with the FP32 one."""

    path: Path
    quantizer: str
    method: str
    calib_images: int
    seconds: float
    qdq_nodes: int  # QuantizeLinear nodes in the output
    gate: dict = field(default_factory=dict)  # compare_logits report + thresholds

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


class _Reader:
    """ONNX Runtime ``CalibrationDataReader`` over (N, C, H, W) float32 images, ``batch`` at a time."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int = 8):
        self.input_name, self.images, self.batch, self.pos = input_name, images, batch, 0

    def get_next(self):
        if self.pos >= len(self.images):
            return None
        chunk = self.images[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return {self.input_name: np.ascontiguousarray(chunk, dtype=np.float32)}

    def rewind(self):
        self.pos = 0


def _input_name(path: Path) -> str:
    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def _run_ort(src: Path, dst: Path, calib: np.ndarray, method: str) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
               "minmax": CalibrationMethod.MinMax}
    reader = _Reader(_input_name(src), calib)
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # its "consider pre-processing" advice, on every run
    try:
        _quantize_static(quantize_static, src, dst, reader, methods[method], QuantFormat, QuantType)
    finally:
        root.setLevel(level)


def weight_gemms(model: onnx.ModelProto, ops: tuple[str, ...] = QUANTIZED_OPS) -> list[str]:
    """Names of the ``ops`` nodes of ``model`` that multiply by a constant weight (an initializer or a
    ``Constant`` among their first two inputs): Linear/Conv layers, not activation x activation MatMuls."""
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type in ops and any(x in consts for x in n.input[:2])]


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with a unique name on every node (``nodes_to_quantize`` selects by name; unnamed nodes
    would all match an empty name)."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = next(f"{n.op_type}_{i}_{k}" for k in range(len(taken) + 1) if f"{n.op_type}_{i}_{k}" not in taken)
            taken.add(n.name)
    return model


def _quantize_static(quantize_static, src, dst, reader, method, QuantFormat, QuantType) -> None:  # noqa: N803
    model = _named(onnx.load(str(src)))
    nodes = weight_gemms(model)
    if not nodes:  # ONNX Runtime reads an empty list as "every node"
        raise SnpEdgeError(f"{src} has no MatMul/Gemm/Conv with a constant weight: nothing to quantise")
    quantize_static(model, str(dst), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(QUANTIZED_OPS),
                    nodes_to_quantize=nodes, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                   "CalibPercentile": 99.999, "CalibTensorRangeSymmetric": False,
                                   # GEMM outputs stay FP32 (int8 kernels with float output, no requantisation)
                                   "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS)})


def _run_modelopt(src: Path, dst: Path, calib: np.ndarray, method: str) -> None:
    """Model Optimizer in a subprocess (:mod:`export.modelopt_worker`: it patches ONNX Runtime on import)."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(dir=str(Path(dst).parent)) as tmp:
        calib_path = Path(tmp) / "calib.npy"
        np.save(calib_path, np.ascontiguousarray(calib, dtype=np.float32))
        res = subprocess.run([sys.executable, "-m", "snp_edge.export.modelopt_worker", str(src), str(dst),
                              str(calib_path), {"minmax": "max"}.get(method, method), _input_name(src)],
                             capture_output=True, text=True)
    if res.returncode:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        message = lines[-1] if lines else f"exit status {res.returncode}"
        if res.returncode == 3:
            raise MissingPrerequisite(message)
        raise SnpEdgeError(f"Model Optimizer failed on {src}: {message[:300]}")


QUANTIZERS: dict[str, Quantizer] = {q.name: q for q in [
    Quantizer("ort", "ONNX Runtime quantize_static: QDQ, per-channel 7-bit int8 weights, uint8 activations, "
                     "weight MatMul/Gemm/Conv only (ONNX Runtime CPU int8 kernels)", "onnxruntime",
              CALIBRATION_METHODS, "minmax", _run_ort),
    Quantizer("modelopt", "NVIDIA Model Optimizer ONNX PTQ: TensorRT explicit quantisation (LayerNorm, Softmax, "
                          "GELU unquantised)", "tensorrt", ("entropy", "minmax"), "minmax", _run_modelopt),
]}


def get_quantizer(name: str) -> Quantizer:
    if name not in QUANTIZERS:
        raise SnpEdgeError(f"unknown quantizer {name!r}; use one of {', '.join(QUANTIZERS)}")
    return QUANTIZERS[name]


def eval_session(path: str | Path):
    """An ONNX Runtime CPU session for a QDQ model: all graph optimisations (ONNX Runtime fuses its own QDQ
    placement into int8 kernels), falling back to basic ones for placements its fusions reject (Model
    Optimizer's TensorRT placement, seen failing in SimplifiedLayerNormFusion)."""
    from snp_edge.engines.common.errors import EnginesError

    try:
        return ort_session(str(path), threads=None)
    except EnginesError:
        return ort_session(str(path), threads=None, optimization="basic")


def logits_of(session, images: np.ndarray, batch: int = 8) -> np.ndarray:
    """(N, classes) logits of ``session`` for (N, C, H, W) ``images``, ``batch`` at a time."""
    return np.concatenate([run_logits(session, images[i:i + batch]) for i in range(0, len(images), batch)])


def accuracy_gate(fp32: np.ndarray, int8: np.ndarray, thresholds: GateThresholds = DEFAULT_GATE) -> dict:
    """:func:`compare_logits` of the INT8 logits against the FP32 ones under ``thresholds`` (a report with
    ``passed`` and one line per ``failures``)."""
    report = compare_logits(int8, fp32, Tolerance(thresholds.atol_frac, thresholds.min_top1))
    report["thresholds"] = asdict(thresholds)
    report["flips"] = report["flips"][:10]
    return report


def count_qdq(model: onnx.ModelProto) -> int:
    return sum(n.op_type == "QuantizeLinear" for n in model.graph.node)


def quantize_onnx(src: str | Path, dst: str | Path, calib: np.ndarray, quantizer: str = "ort",
                  method: str | None = None, thresholds: GateThresholds = DEFAULT_GATE, parser: str | None = None,
                  gate: bool = True) -> QuantizeResult:
    """Quantise the FP32 ONNX ``src`` into ``dst`` (written in place: callers stage it) with ``quantizer``,
    calibrated on ``calib`` ((N, C, H, W) float32 in the ONNX's input form) by ``method``; ``parser``: the
    TensorRT ONNX parser the QDQ graph must pass (export/trt_ops.py). With ``gate``, the INT8 model must
    agree with the FP32 one on ``calib`` within ``thresholds`` (:class:`VerificationFailed` otherwise)."""
    q = get_quantizer(quantizer)
    method = method or q.default_method
    if method not in q.methods:
        raise SnpEdgeError(f"--calibration {method} is not available with --quantizer {q.name} "
                           f"(it has {', '.join(q.methods)})")
    calib = np.ascontiguousarray(calib, dtype=np.float32)
    if calib.ndim != 4 or not len(calib):
        raise SnpEdgeError(f"calibration data must be (N, C, H, W) images with N >= 1, got shape {calib.shape}")
    src, dst = Path(src), Path(dst)
    start = time.perf_counter()
    try:
        q.run(src, dst, calib, method)
    except (SnpEdgeError, MissingPrerequisite):
        raise
    except Exception as exc:  # the quantisers raise their own types (onnx, ONNX Runtime, Model Optimizer)
        raise SnpEdgeError(f"{q.name} quantisation of {src} failed: {first_line(exc, 300)}") from None
    seconds = time.perf_counter() - start
    model = onnx.load(str(dst))
    if parser:
        from .trt_ops import check_graph

        check_graph(model, parser)
    result = QuantizeResult(dst, q.name, method, len(calib), round(seconds, 2), count_qdq(model))
    if not result.qdq_nodes:
        raise SnpEdgeError(f"{q.name} placed no QuantizeLinear node in {src}: nothing quantised")
    if gate:
        fp32 = logits_of(ort_session(str(src)), calib)
        int8 = logits_of(eval_session(dst), calib)
        result.gate = accuracy_gate(fp32, int8, thresholds)
    meta = {k: v for k, v in result.to_dict().items() if k != "path"}
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta, sort_keys=True))
    onnx.save(model, str(dst))
    if gate and not result.gate["passed"]:
        raise VerificationFailed(f"INT8 ({q.name}, {method}) fails the accuracy gate against FP32 on "
                                 f"{len(calib)} calibration images: {'; '.join(result.gate['failures'])}; "
                                 "nothing written")
    return result


def read_quantization(path: str | Path) -> dict | None:
    """The ``snp_edge.quantization`` record of a quantised ONNX file (None for a float model)."""
    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    return None


def op_histogram(path: str | Path) -> dict[str, int]:
    return dict(Counter(n.op_type for n in onnx.load(str(path)).graph.node))


def quantize_for_target(src: str | Path, dst: str | Path, calib: np.ndarray, target: str,
                        quantizer: str | None = None, method: str | None = None,
                        thresholds: GateThresholds = DEFAULT_GATE, gate: bool = True) -> QuantizeResult:
    """:func:`quantize_onnx` with the device ``target``'s Q/DQ placement (its ``quantizer`` in the target
    table, unless ``quantizer`` is given), refused for targets without INT8 (``jetson-nano``). A TensorRT
    target's QDQ graph must pass its parser's explicit-quantisation rules (:func:`export.trt_ops.check_qdq`)."""
    from snp_edge.engines.common.targets import check_precision, resolve_target

    from .trt_ops import check_qdq

    spec = resolve_target(target)
    check_precision(target, "int8")
    name = quantizer or spec.quantizer
    if spec.runtime == "tensorrt" and get_quantizer(name).runtime != "tensorrt":
        raise SnpEdgeError(f"--quantizer {name} places Q/DQ for ONNX Runtime (asymmetric uint8 activations), "
                           f"which {target}'s TensorRT does not take; use --quantizer {spec.quantizer}")
    result = quantize_onnx(src, dst, calib, name, method, thresholds, gate=gate)
    if spec.trt_parser:
        check_qdq(onnx.load(str(dst)), spec.trt_parser)
    return result
