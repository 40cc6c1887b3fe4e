"""What is being benchmarked: a candidate is an ONNX file, a TensorRT engine, a pruned-model folder, a timm
model name, or a file of measurements made elsewhere (see :mod:`bench.ingest`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snp_edge.errors import SnpEdgeError

from .backends import OrtRunner, Runner, TorchRunner, TrtRunner

if TYPE_CHECKING:
    from snp_edge.models import ModelHandle



@dataclass
class Candidate:
    """One row of the report.

    Attributes:
        label: unique display name.
        source: what the user named (path or timm name).
        kind: "onnx" | "engine" | "pruned" | "timm" | "measured".
        role: "unpruned" | "pruned" | "reference" (a comparison model such as DeiT-Tiny) | "unknown".
        gmacs: multiply-accumulates per image / 1e9 (None if unknown).
        params: parameter count (None if unknown).
        top1: ImageNet top-1 accuracy in % where known.
        measured: for kind "measured", what :func:`bench.ingest.load_measurement` read.
    """

    label: str
    source: str
    kind: str
    role: str = "unknown"
    handle: ModelHandle | None = None
    path: Path | None = None
    gmacs: float | None = None
    params: int | None = None
    top1: float | None = None
    accuracy_meaningful: bool | None = None
    notice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] | None = None


def _cost_from_onnx(path: Path) -> tuple[float, int]:
    from .macs import onnx_macs, onnx_params

    return onnx_macs(path) / 1e9, onnx_params(path)


def sibling_onnx(path: Path) -> Path | None:
    """``model.onnx`` next to ``model.engine`` / ``model.times.json``: the graph an engine was built from."""
    name = path.name
    while "." in name:
        name = name.rsplit(".", 1)[0]
        onnx_path = path.with_name(name + ".onnx")
        if onnx_path.is_file():
            return onnx_path
    return None


def find_bundle(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """The bundle folder above ``path`` (engines are cached inside their bundle) and its manifest's ``model``
    entry (base_model, pruned, gmacs, params, accuracy_meaningful, notice); None outside a bundle."""
    from snp_edge.engines.common.errors import EnginesError
    from snp_edge.engines.manifest import MANIFEST_NAME, load_manifest

    for folder in path.resolve().parents:
        if (folder / MANIFEST_NAME).is_file():
            try:
                return folder, load_manifest(str(folder))["model"]
            except EnginesError:
                return None
    return None


def predicted_extra(summary: dict | None) -> dict:
    """The latency a pruned model's latency table predicted (model.json's summary), for the report."""
    summary = summary or {}
    if summary.get("predicted_ms_after") is None:
        return {}
    table = summary.get("latency_table") or {}
    return {"predicted_ms": summary["predicted_ms_after"],
            "predicted_for": {k: table.get(k) for k in ("backend", "precision", "batch", "threads")}}


def from_handle(handle: ModelHandle, source: str, role: str | None = None, label: str | None = None,
                extra: dict | None = None) -> Candidate:
    """A candidate for a model already in memory (GMACs by torch's FLOP counter, on CPU)."""
    return Candidate(
        label=label or handle.name, source=source, kind="pruned" if handle.pruned else "timm",
        role=role or ("pruned" if handle.pruned else "unpruned"), handle=handle,
        gmacs=handle.gmacs, params=handle.params, accuracy_meaningful=handle.accuracy_meaningful,
        notice=handle.notice, extra={"base_model": handle.base_model, **(extra or {})})


def from_spec(spec: str, weights: str = "auto", model_args: dict | None = None) -> Candidate:
    """A candidate from a command-line argument (see :mod:`snp_edge.sources` for what a name can be)."""
    from snp_edge.sources import load_handle, source_kind

    kind = source_kind(spec)
    path = Path(spec)
    if kind in ("pruned", "timm"):
        extra = {}
        if kind == "pruned":
            from snp_edge.saved import read_description

            extra = predicted_extra(read_description(spec).get("summary"))
        return from_handle(load_handle(spec, weights, model_args), spec, extra=extra)
    if kind == "onnx":
        gmacs, params = _cost_from_onnx(path)
        return Candidate(label=path.stem, source=spec, kind="onnx", path=path, gmacs=gmacs, params=params)
    if kind == "engine":
        bundle = find_bundle(path)
        if bundle is not None:
            folder, model = bundle
            return Candidate(label=folder.name, source=spec, kind="engine", path=path, gmacs=model["gmacs"],
                             params=model["params"], role="pruned" if model["pruned"] else "unpruned",
                             accuracy_meaningful=model["accuracy_meaningful"], notice=model.get("notice"),
                             extra={"base_model": model["base_model"]})
        onnx_path = sibling_onnx(path)
        gmacs, params = _cost_from_onnx(onnx_path) if onnx_path else (None, None)
        return Candidate(label=path.stem, source=spec, kind="engine", path=path, gmacs=gmacs, params=params)
    if kind == "measurement":
        from .ingest import load_measurement

        m = load_measurement(path)
        onnx_path = sibling_onnx(path)
        gmacs, params = _cost_from_onnx(onnx_path) if onnx_path and m.get("gmacs") is None else (None, None)
        role = {True: "pruned", False: "unpruned"}.get(m.get("pruned"), "unknown")
        return Candidate(label=path.name.split(".")[0], source=spec, kind="measured", role=role, path=path,
                         gmacs=m.get("gmacs") or gmacs, params=m.get("params") or params,
                         accuracy_meaningful=m.get("accuracy_meaningful"), notice=m.get("notice"),
                         extra={"base_model": m.get("base_model")}, measured=m)
    raise SnpEdgeError(f"cannot benchmark {spec}: a {kind} file is not a model; expected .onnx, an engine, a "
                       "measurement file, a pruned-model folder or a timm model name")


def unique_labels(cands: list[Candidate]) -> None:
    """Make labels unique in place: repeated labels get their source, then a counter."""
    counts: dict[str, int] = {}
    for c in cands:
        counts[c.label] = counts.get(c.label, 0) + 1
    seen: set[str] = set()
    for c in cands:
        if counts[c.label] > 1:
            c.label = c.source if c.source not in seen else c.label
        base, i = c.label, 2
        while c.label in seen:
            c.label, i = f"{base} #{i}", i + 1
        seen.add(c.label)


def make_runner(c: Candidate, backend: str, batch: int, threads: int, device: str, fp16: bool,
                onnx_path: Path) -> Runner:
    """The runner for candidate ``c`` on ``backend``; for ort, models in memory are exported to ``onnx_path``
    when the runner is prepared."""
    if backend == "ort":
        if c.kind == "onnx":
            return OrtRunner(c.path, batch, threads, device)
        if c.handle is not None:
            return OrtRunner(onnx_path, batch, threads, device, export_from=c.handle)
    elif backend == "torch":
        if c.handle is not None:
            return TorchRunner(c.handle, batch, threads, device, fp16)
    elif backend == "trt":
        if c.kind == "engine":
            return TrtRunner(c.path, batch)
    hint = {"onnx": "an ONNX file runs on --backend ort", "engine": "an engine runs on --backend trt",
            "pruned": "a pruned folder runs on --backend ort or torch (build an engine for trt)",
            "timm": "a timm model runs on --backend ort or torch (build an engine for trt)"}.get(c.kind, "")
    raise SnpEdgeError(f"{c.source}: cannot run a {c.kind} candidate on --backend {backend}; {hint}")
