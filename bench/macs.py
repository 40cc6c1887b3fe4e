"""Multiply-accumulates (MACs) and parameters of an ONNX graph, for candidates that are bare ONNX files.

Counts what :mod:`snp_edge.macs` counts with torch's FLOP counter: MatMul, Gemm and Conv only (norms,
softmax, activations and element-wise ops are free), from tensor shapes after onnxruntime's symbolic shape
inference (plain ONNX shape inference loses the shapes behind timm's Shape/Slice/Reshape chains).
"""

from __future__ import annotations

import math
from pathlib import Path

import onnx

from snp_edge.errors import SnpEdgeError, first_line


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Tensor name -> static shape (None for a dimension left unknown)."""
    g = model.graph
    out: dict[str, list[int | None]] = {t.name: list(t.dims) for t in g.initializer}
    for vi in (*g.input, *g.value_info, *g.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
    return out


def _matmul(a: list[int], b: list[int]) -> int:
    """numpy matmul semantics: 1-D operands are promoted, leading dims broadcast."""
    a = [1, *a] if len(a) == 1 else a
    b = [*b, 1] if len(b) == 1 else b
    batch_a, batch_b = a[:-2], b[:-2]
    n = max(len(batch_a), len(batch_b))
    batch_a = [1] * (n - len(batch_a)) + batch_a
    batch_b = [1] * (n - len(batch_b)) + batch_b
    batch = math.prod(max(x, y) for x, y in zip(batch_a, batch_b, strict=True))
    return batch * a[-2] * a[-1] * b[-1]


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int | None]]) -> int:
    op = node.op_type
    if op not in ("MatMul", "Gemm", "Conv"):
        return 0
    tensors = [node.input[0], node.input[1], node.output[0]]
    dims = [shapes.get(t) for t in tensors]
    if any(d is None or None in d for d in dims):
        raise SnpEdgeError(f"cannot count MACs: shape of {op} node {node.name!r} is unknown after shape inference")
    a, b, y = dims
    if op == "MatMul":
        return _matmul(a, b)
    if op == "Gemm":
        trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
        m, k = (a[1], a[0]) if trans_a else (a[0], a[1])
        return m * k * y[1]
    # Conv: weight (C_out, C_in / group, *kernel); every output element costs C_in / group * prod(kernel)
    return math.prod(y) * math.prod(b[1:])


def load_onnx(path: str | Path, load_external_data: bool = True) -> onnx.ModelProto:
    """The ONNX model in ``path``, refused in one line when it is not one (empty, truncated, no graph)."""
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:
        raise SnpEdgeError(f"cannot read ONNX file {path}: {first_line(exc)}") from None
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not model.graph.node or not model.graph.input or not model.graph.output or not opsets:
        raise SnpEdgeError(f"{path} is not an ONNX model (no graph, inputs, outputs or opset)")
    if max(opsets) < 7:
        raise SnpEdgeError(f"{path} uses ONNX opset {max(opsets)}; snp-edge reads opset 7 and above")
    return model


def _with_batch(path: Path, batch: int) -> onnx.ModelProto:
    model = load_onnx(path)
    initializers = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name not in initializers and inp.type.tensor_type.shape.dim:
            dim0 = inp.type.tensor_type.shape.dim[0]
            dim0.Clear()
            dim0.dim_value = batch
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:
        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception as exc:  # the inferencer raises bare Exceptions on unsupported graphs
        raise SnpEdgeError(f"cannot infer tensor shapes of {path}: {first_line(exc)}") from None
    if inferred is None:
        raise SnpEdgeError(f"cannot infer tensor shapes of {path}")
    return inferred


def onnx_macs(path: str | Path, batch: int = 1) -> int:
    """MACs of one run of the ONNX model at ``path`` on ``batch`` images (MatMul + Gemm + Conv)."""
    model = _with_batch(Path(path), batch)
    shapes = _shapes(model)
    return sum(_node_macs(n, shapes) for n in model.graph.node)


def onnx_params(path: str | Path) -> int:
    """Parameters of the ONNX model at ``path``: elements of its floating-point initializers that are not
    scalars (scalars are op constants such as GELU's), counting again those the exporter shared between
    layers through Identity nodes (equal tensors, e.g. at init)."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
    graph = load_onnx(path, load_external_data=False).graph
    sizes = {t.name: math.prod(t.dims) for t in graph.initializer if t.data_type in floats and t.dims}
    shared = sum(sizes[n.input[0]] for n in graph.node if n.op_type == "Identity" and n.input[0] in sizes)
    return sum(sizes.values()) + shared
