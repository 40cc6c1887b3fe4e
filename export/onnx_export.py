"""``torch.onnx.export`` of a (pruned) ViT into an ONNX file TensorRT 8.2 and 10 parse, verified by ONNX Runtime.

Default: opset 13, LayerNorm decomposed (ReduceMean/Sub/Pow/Sqrt/Div), Erf GELU, explicit
MatMul/Softmax/MatMul attention, dynamic batch, fixed C/H/W; input ``input`` (N, 3, H, W) float32,
output ``logits`` (N, classes). ``opset=17`` keeps LayerNormalization (TensorRT >= 8.6).

Variants the runtimes want (see :mod:`export.flavors`): the normalisation folded into the patch embedding
(``input_form``, :mod:`export.normalize`), a static batch (``batch``), and a softmax head (output ``probs``).
"""

from __future__ import annotations

import collections
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from snp_edge.engines.common.fileio import Output
from snp_edge.engines.common.targets import DeviceTarget, resolve_target
from torch import nn

from snp_edge.errors import SnpEdgeError, VerificationFailed
from snp_edge.models import ModelHandle

from .cleanup import clean
from .normalize import InputForm, fold_into_patch_embed
from .parity import FP32_ATOL, Parity, check_parity
from .prepare import export_copy
from .trt_ops import check_graph

SUPPORTED_OPSETS = (13, 14, 15, 16, 17)
HEADS = {"logits": "logits", "softmax": "probs"}  # head -> ONNX output name


class SoftmaxHead(nn.Module):
    """``model`` followed by a softmax over classes: probabilities, as jetson-inference and nvinfer read them."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=-1)


@dataclass
class ExportResult:
    """What an export wrote and how well it matches PyTorch."""

    path: Path
    opset: int
    parser: str  # TensorRT ONNX-parser rules the graph satisfies: "trt8.2" | "trt8.5" | "trt10"
    ops: dict[str, int]
    attention: list[dict]  # per block: heads, qk, v read back from the graph
    fp32_nodes: dict[str, list[str]]  # {"norms": [...], "softmax": [...]}: node names to keep in FP32 under FP16
    parity: list[Parity] = field(default_factory=list)
    fp16_safe: bool = False
    target: str | None = None  # device target the export was made for, if any
    input_form: InputForm | None = None  # what the input holds (None: the model's own normalised input)
    batch: int | None = None  # static batch size, None: dynamic
    output: str = "logits"  # output name: "logits", or "probs" with a softmax head

    def to_dict(self) -> dict:
        return {"path": str(self.path), "opset": self.opset, "parser": self.parser, "target": self.target,
                "ops": self.ops, "attention": self.attention, "parity": [p.to_dict() for p in self.parity],
                "fp16_safe": self.fp16_safe, "batch": self.batch, "output": self.output,
                "input_form": self.input_form.to_dict() if self.input_form else None}


def attention_widths(model: onnx.ModelProto) -> list[dict]:
    """Per block, the attention widths the graph really computes: heads and Q/K and V width per head.

    Read from the shapes of the activation x activation MatMuls (Q @ K^T, then A @ V) after shape inference.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    consts = {i.name for i in model.graph.initializer}
    pairs = [n for n in inferred.graph.node if n.op_type == "MatMul" and not set(n.input) & consts]
    out = []
    for qk_node, av_node in zip(pairs[::2], pairs[1::2], strict=True):
        q, v = shapes[qk_node.input[0]], shapes[av_node.input[1]]
        out.append({"heads": q[1], "qk": q[-1], "v": v[-1]})
    return out


def model_form(handle: ModelHandle) -> InputForm:
    """The unfolded input form of ``handle``: its own timm mean/std."""
    return InputForm.external(handle.data_config["mean"], handle.data_config["std"])


def export_onnx(handle: ModelHandle, out: str | Path, opset: int | None = None, parser: str | None = None,
                fp16_safe: bool = False, verify: bool = True, images: torch.Tensor | None = None,
                force: bool = False, target: str | DeviceTarget | None = None, input_form: InputForm | None = None,
                batch: int | None = None, head: str = "logits") -> ExportResult:
    """Export ``handle``'s model to ``out`` (atomically), check it for ``parser``, and verify it with ONNX Runtime.

    Args:
        opset: 13 (TensorRT 8.2 / Jetson Nano) up to 17 (LayerNormalization; TensorRT >= 8.6); default: the
            device ``target``'s, else 13.
        parser: TensorRT ONNX-parser rules the graph must satisfy, "trt8.2", "trt8.5" or "trt10" (default:
            the device ``target``'s, else trt8.2 at opset 13 and trt10 above).
        fp16_safe: also record the LayerNorm/Softmax node names in the ONNX metadata (``snp_edge.fp32_nodes``).
        verify: compare with PyTorch at batch 1 and 8; fail (exit 1) if the max abs error exceeds 1e-4.
        images: parity inputs (N, C, H, W) as the model takes them (normalised); default: 8 seeded normal
            images. With a folded ``input_form`` the ONNX gets ``input_form.encode(images)``, the model ``images``.
        target: a device target (``snp_edge.engines.common.targets``) whose opset and parser are the defaults.
        input_form: what the ONNX input holds; a form with ``in_graph`` folds the difference to the model's
            normalisation into the patch embedding (:mod:`export.normalize`). Default: the model's own form.
        batch: a static batch size (default: dynamic).
        head: "logits" (output ``logits``) or "softmax" (output ``probs``).
    """
    spec = resolve_target(target) if target else None  # a name or the caller's resolved DeviceTarget
    target = spec.name if spec else None
    opset = opset or (spec.opset if spec else 13)
    if opset not in SUPPORTED_OPSETS:
        raise SnpEdgeError(f"--opset {opset} is not supported; use one of {SUPPORTED_OPSETS}")
    parser = parser or (spec.trt_parser if spec else None) or ("trt8.2" if opset <= 13 else "trt10")
    if head not in HEADS:
        raise SnpEdgeError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    output_name = HEADS[head]
    mean, std = handle.data_config["mean"], handle.data_config["std"]
    form = input_form or model_form(handle)
    output = Output(out, force, kind="file")
    model = export_copy(handle.model)
    if form.in_graph:
        fold_into_patch_embed(model, form, mean, std)
    reference = handle.model
    if head == "softmax":
        model, reference = SoftmaxHead(model), SoftmaxHead(handle.model)
    size = (handle.in_chans, handle.img_size, handle.img_size)
    if images is None:
        images = torch.randn(8, *size, generator=torch.Generator().manual_seed(0))
    onnx_images = torch.from_numpy(form.encode(images, mean, std))
    dummy = onnx_images[:batch or 1]
    if len(dummy) < (batch or 1):
        dummy = dummy.repeat(batch, 1, 1, 1)[:batch]
    dynamic = None if batch else {"input": {0: "batch"}, output_name: {0: "batch"}}
    with output:
        tmp = output.stage()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, dummy, tmp, input_names=["input"], output_names=[output_name],
                              dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)
        graph, fp32_nodes = clean(onnx.load(tmp), fp16_safe=fp16_safe)
        graph.producer_name, graph.doc_string = "snp-edge", f"{handle.name}; weights: {handle.weights}"
        if handle.notice:
            graph.metadata_props.add(key="snp_edge.notice", value=handle.notice)
        onnx.checker.check_model(graph, full_check=True)
        check_graph(graph, parser)
        onnx.save(graph, tmp)
        result = ExportResult(Path(out), opset, parser, dict(collections.Counter(n.op_type for n in graph.graph.node)),
                              attention_widths(graph), fp32_nodes, fp16_safe=fp16_safe, target=target,
                              input_form=form, batch=batch, output=output_name)
        if verify:
            result.parity = check_parity(tmp, reference, images, batches=(batch,) if batch else (1, 8),
                                         onnx_inputs=onnx_images.numpy(), output_name=output_name)
            worst = max(p.max_abs for p in result.parity)
            if not worst <= FP32_ATOL:
                folded = " (normalisation folded into the graph)" if form.in_graph else ""
                raise VerificationFailed(f"ONNX Runtime{folded} and PyTorch disagree: max abs error {worst:.3g} > "
                                         f"{FP32_ATOL} (use --no-verify to keep the file anyway)")
        output.publish()
    return result
