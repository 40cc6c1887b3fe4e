"""Graph clean-up with onnx-graphsurgeon: short passes, each with one job."""

from __future__ import annotations

import json
import re

import onnx
import onnx_graphsurgeon as gs

FP32_NODES_KEY = "snp_edge.fp32_nodes"
_NORM = re.compile(r"(^|/)(norm\d?|norm_pre|fc_norm)(/|$)")


def fold_and_clean(graph: gs.Graph) -> gs.Graph:
    """Fold constants (so Slice/Squeeze/Unsqueeze axes become initializers), drop dead nodes, toposort."""
    graph.fold_constants().cleanup(remove_unused_graph_inputs=False).toposort()
    return graph


def module_path(node_name: str) -> str:
    """``/blocks/blocks.0/attn/qkv/MatMul`` -> ``blocks.0.attn.qkv`` (torch.onnx scope names)."""
    parts: list[str] = []
    for part in node_name.strip("/").split("/")[:-1]:
        if parts and part.startswith(parts[-1] + "."):
            parts[-1] = part
        else:
            parts.append(part)
    return ".".join(parts)


def name_weights(graph: gs.Graph) -> gs.Graph:
    """Give MatMul/Gemm/Conv weights module names (``blocks.0.attn.qkv.weight``) instead of ``onnx::MatMul_123``."""
    used = set()
    for node in graph.nodes:
        if node.op not in ("MatMul", "Gemm", "Conv"):
            continue
        for inp, role in zip(node.inputs[1:], ("weight", "bias"), strict=False):
            if isinstance(inp, gs.Constant) and len(inp.outputs) == 1:
                name = f"{module_path(node.name) or node.name}.{role}"
                if name not in used:
                    inp.name = name
                    used.add(name)
    return graph


def fp32_nodes(graph: gs.Graph) -> dict[str, list[str]]:
    """The one LayerNorm matcher: ``{"norms": [...], "softmax": [...]}``, names of the nodes that make up the
    LayerNorms (opset 13: ReduceMean/Sub/Pow/Add/Sqrt/Div/Mul under a ``norm`` module; opset 17:
    LayerNormalization) and the Softmaxes. A bundle's manifest carries them; the device builder pins exactly
    these layers to FP32 with ``--fp32-norms`` / ``--fp32-softmax``."""
    norms = [n.name for n in graph.nodes if n.op == "LayerNormalization" or _NORM.search(n.name)]
    return {"norms": norms, "softmax": [n.name for n in graph.nodes if n.op == "Softmax"]}


def clean(model: onnx.ModelProto, fp16_safe: bool = False) -> tuple[onnx.ModelProto, dict[str, list[str]]]:
    """All passes; returns the cleaned model and its :func:`fp32_nodes`. With ``fp16_safe`` those names also go
    into the model's metadata (``snp_edge.fp32_nodes``, a JSON list) for builders outside snp-edge."""
    graph = name_weights(fold_and_clean(gs.import_onnx(model)))
    out = gs.export_onnx(graph)
    nodes = fp32_nodes(graph)
    if fp16_safe:
        out.metadata_props.add(key=FP32_NODES_KEY, value=json.dumps(nodes["norms"] + nodes["softmax"]))
    return out, nodes
