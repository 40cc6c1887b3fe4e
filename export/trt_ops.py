"""Which ONNX graphs each TensorRT ONNX parser accepts: opset ceiling, supported ops, constant-input rules.

From onnx-tensorrt's operator support matrix (``docs/operators.md`` at each release branch) and TensorRT's
changelog. Checked after every export; the first offending node is named in the error.

=========  =============  ================================================================================
parser     opset ceiling  source
=========  =============  ================================================================================
trt8.2     13             8.2-GA operators.md (Jetson Nano, JetPack 4.6)
trt8.5     17             8.5-GA operators.md: adds Mod, Reciprocal, HardSwish, ...; LayerNormalization is
                          parsed only from 8.6 (8.6-GA), so JetPack 5 exports opset 13 with LayerNorm
                          decomposed
trt10      20             10.0/10.1-GA operators.md ("opset 9 to opset 20"), also TensorRT 10.3 (JetPack 6:
                          10.2-10.4 only add ops and accept Slice axes as tensors); LayerNormalization, Gelu
=========  =============  ================================================================================

The op sets below keep to what is deterministic and useful for vision transformers and CNN stems.
"""

from __future__ import annotations

import onnx
import onnx.numpy_helper

from snp_edge.errors import SnpEdgeError

# ops the TensorRT 8.2 ONNX parser supports (operators.md, "Y"), restricted to what is deterministic
# and useful for vision transformers and CNN stems
TRT82_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu
Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div
Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual HardSigmoid Identity If
InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax LRN LpNormalization LpPool MatMul
Max MaxPool Mean Min Mul Neg Not Or Pad Pow PRelu QuantizeLinear Range ReduceL1 ReduceL2 ReduceLogSum
ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
Round ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign
SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Unsqueeze Where Xor
""".split())

TRT85_OPS = TRT82_OPS | {"HardSwish", "Mod", "Reciprocal", "MeanVarianceNormalization", "Trilu", "OneHot"}

PARSERS = {
    # name: (max opset, supported ops); device targets name theirs in snp_edge.engines.common.targets
    "trt8.2": (13, TRT82_OPS),
    "trt8.5": (17, TRT85_OPS),
    "trt10": (20, TRT85_OPS | {"LayerNormalization", "Gelu", "IsInf", "GroupNormalization", "CastLike"}),
}
# inputs that TensorRT 8.2 needs as initializers/constants: op -> input positions
CONSTANT_INPUTS = {"Slice": (1, 2, 3, 4), "Squeeze": (1,), "Unsqueeze": (1,), "Conv": (1,), "TopK": (1,),
                   "CumSum": (1,)}


def check_graph(model: onnx.ModelProto, parser: str = "trt8.2") -> None:
    """Raise :class:`SnpEdgeError` if TensorRT's ``parser`` cannot parse ``model`` (opset, ops, constants)."""
    if parser not in PARSERS:
        raise SnpEdgeError(f"unknown TensorRT parser {parser!r}; use one of {', '.join(PARSERS)}")
    max_opset, ops = PARSERS[parser]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset > max_opset:
        raise SnpEdgeError(f"opset {opset} cannot be parsed by {parser} (at most opset {max_opset}); "
                           f"export with --opset {min(13, max_opset)}")
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    for n in model.graph.node:  # explicit quantisation: Q/DQ of a constant (a quantised weight) is one too
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] in constants:
            constants.add(n.output[0])
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise SnpEdgeError(f"node {node.name!r} uses custom domain {node.domain!r}, which {parser} cannot parse")
        if node.op_type not in ops:
            raise SnpEdgeError(f"node {node.name!r} is a {node.op_type}, which {parser} cannot parse at opset {opset}")
        for pos in CONSTANT_INPUTS.get(node.op_type, ()):
            if pos < len(node.input) and node.input[pos] and node.input[pos] not in constants:
                raise SnpEdgeError(f"node {node.name!r} ({node.op_type}) needs input {pos} as a constant for {parser}")


def check_qdq(model: onnx.ModelProto, parser: str) -> int:
    """Raise :class:`SnpEdgeError` unless every Q/DQ node of ``model`` follows TensorRT's explicit-quantisation
    rules (TensorRT developer guide, "Explicit Quantization"): INT8 only, symmetric (zero point 0), scale
    and zero point constants, opset >= 13 for per-channel axes; and :func:`check_graph` for ``parser``.
    Returns the number of QuantizeLinear nodes."""
    check_graph(model, parser)
    inits = {i.name: i for i in model.graph.initializer}
    consts = {o: n for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    count = 0
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        count += node.op_type == "QuantizeLinear"
        for pos, what in ((1, "scale"), (2, "zero point")):
            name = node.input[pos] if pos < len(node.input) else ""
            if not name:
                continue
            if name not in inits and name not in consts:
                raise SnpEdgeError(f"node {node.name!r} ({node.op_type}): its {what} is not a constant, which "
                                   f"{parser}'s explicit quantisation requires")
            if pos == 2:
                tensor = inits[name] if name in inits else consts[name].attribute[0].t
                values = onnx.numpy_helper.to_array(tensor)
                if tensor.data_type != onnx.TensorProto.INT8:
                    raise SnpEdgeError(f"node {node.name!r} ({node.op_type}) quantises to "
                                       f"{onnx.TensorProto.DataType.Name(tensor.data_type)}; {parser} runs INT8 "
                                       "only (use the target's quantizer)")
                if values.any():
                    raise SnpEdgeError(f"node {node.name!r} ({node.op_type}) has a nonzero zero point; {parser} "
                                       "takes symmetric quantisation only (use the target's quantizer)")
    return count
