"""Bundle flavours: the files other runtimes want beside the bundle's own (``snp-edge bundle --flavor NAME``).

One table, next to the device-target table (``engines/common/targets.py``) whose targets it names. Adding a runtime
is one :class:`Flavor` entry here plus its writer module ``export/<module>.py`` with
``write(ctx: FlavorContext) -> FlavorResult``. This module imports nothing heavy (the command line reads
the table to build ``--help``); writers are imported when a bundle is made.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snp_edge.engines.common.targets import TARGETS

from snp_edge.errors import SnpEdgeError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from snp_edge.engines.common.targets import DeviceTarget

    from snp_edge.models import ModelHandle

    from .onnx_export import ExportResult


@dataclass(frozen=True)
class Flavor:
    name: str          # the --flavor value and the bundle folder the files go in
    description: str   # one line for --help and the README
    targets: tuple     # device targets (engines/common/targets.py) the runtime runs on
    module: str        # writer module under snp_edge.export, defining write(ctx) -> FlavorResult


JETSONS = ("jetson-nano", "jetson-orin", "jetson-orin-nano", "jetson-orin-jp5")  # jetson-inference, DeepStream

FLAVORS = OrderedDict((f.name, f) for f in [
    Flavor("jetson-inference", "jetson-inference imagenet.py/imageNet: static batch 1, softmax output, folded "
           "for its own ImageNet normalisation", JETSONS, "jetson_inference"),
    Flavor("deepstream", "DeepStream nvinfer primary classifier: config_infer_primary.txt, labels in DeepStream's "
           "format, 0..255 pixels with the normalisation folded in", JETSONS + ("rtx3090",), "deepstream"),
    Flavor("triton", "Triton Inference Server model repository: config.pbtxt (dynamic batching, instance groups), "
           "1/model.onnx, a TensorRT-plan config", ("rtx3090",), "triton"),
])
assert all(set(f.targets) <= set(TARGETS) for f in FLAVORS.values()), "a flavour names an unknown target"


@dataclass
class FlavorContext:
    """What a writer gets: the bundle being assembled (``folder``, its files so far) and what it was made from."""

    handle: ModelHandle
    target: DeviceTarget
    folder: Path                   # the bundle's staging folder; write under folder / flavor.name
    main: ExportResult             # the bundle's model.onnx
    images: torch.Tensor           # golden images as the model takes them (normalised), (N, C, H, W)
    labels: list[str]              # class labels, index i = class i
    fp16_safe: bool = False
    photos: list[tuple[str, np.ndarray]] = field(default_factory=list)  # reference photographs (name, HxWx3 uint8)


@dataclass
class FlavorResult:
    """What a writer wrote: the manifest's ``flavors[name]`` entry and its README section (Markdown)."""

    manifest: dict[str, Any]
    readme: str
    notes: list[str] = field(default_factory=list)  # one-line facts for the command's report
    # where the runtime writes when run as the README documents (engine caches, output images): the
    # manifest's ``writable`` places, {folder ("." = bundle root): [file-name patterns]}
    writable: dict[str, list[str]] = field(default_factory=dict)


def merge_writable(*declarations: dict[str, list[str]]) -> dict[str, list[str]]:
    """The union of ``writable`` declarations (patterns per folder, first-seen order, no duplicates)."""
    merged: dict[str, list[str]] = {}
    for declared in declarations:
        for folder, patterns in declared.items():
            merged[folder] = list(dict.fromkeys(merged.get(folder, []) + list(patterns)))
    return dict(sorted(merged.items()))


def get_flavor(name: str) -> Flavor:
    if name not in FLAVORS:
        raise SnpEdgeError(f"unknown flavor {name!r}; known: {', '.join(FLAVORS)}")
    return FLAVORS[name]


def check_flavors(names: list[str] | tuple[str, ...], target: str) -> list[Flavor]:
    """The flavours ``names`` (duplicates dropped, order kept), each checked to run on ``target``."""
    flavors = [get_flavor(n) for n in dict.fromkeys(names)]
    for f in flavors:
        if target not in f.targets:
            raise SnpEdgeError(f"--flavor {f.name} is for {', '.join(f.targets)}, not --target {target}")
    return flavors


def writer(flavor: Flavor) -> Callable[[FlavorContext], FlavorResult]:
    return import_module(f"{__package__}.{flavor.module}").write


def export_for(ctx: FlavorContext, name: str, input_form=None, batch: int | None = None,
               head: str = "logits") -> tuple[ExportResult, dict[str, Any]]:
    """Export ``ctx``'s model to ``<name>/model.onnx`` in the bundle (parity-checked like every export) with the
    bundle's opset and parser; returns the result and the manifest entry's ``path``/``onnx``/``input``/``output``."""
    from .onnx_export import export_onnx

    (ctx.folder / name).mkdir(parents=True, exist_ok=True)
    rel = f"{name}/model.onnx"
    result = export_onnx(ctx.handle, ctx.folder / rel, opset=ctx.main.opset, parser=ctx.main.parser,
                         fp16_safe=ctx.fp16_safe, images=ctx.images, target=ctx.main.target,
                         input_form=input_form, batch=batch, head=head)
    n, c, hw = batch or -1, ctx.handle.in_chans, ctx.handle.img_size
    entry = {"path": name, "onnx": rel,
             "input": {"name": "input", "shape": [n, c, hw, hw], "normalization": result.input_form.to_dict()},
             "output": {"name": result.output, "shape": [n, ctx.handle.num_classes]}}
    return result, entry
