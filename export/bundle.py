"""The device bundle: everything a Jetson (Nano, Orin) or an RTX 3090 box needs, and nothing from the repository.

Layout (see ``engines/manifest.py`` for the manifest schema)::

    BUNDLE/
      manifest.json            schema_version, model, onnx I/O, preprocessing, versions, sha256 of every file
      model.onnx
      README.md                what the ONNX takes, the device check, Polygraphy and flavour commands
      golden/inputs.npy        float32 (N, C, H, W) in the ONNX's input form (normalised, or pixels with
                               --normalize-in-graph): the reference photographs preprocessed by timm on the
                               host, then any --calib images (noise only for models without 3 input channels)
      golden/outputs.npy       float32 (N, classes) ONNX Runtime FP32 logits for them
      reference/images/*.png   the reference photographs (rows 0.. of the golden inputs), SOURCES.txt
      golden/polygraphy_*.json the same in Polygraphy's formats (``polygraphy run --load-inputs/--load-outputs``)
      labels.txt               class labels, one per line (line i = class i)
      <flavor>/                files for another runtime (``--flavor``: jetson-inference, deepstream, triton)
      engines/                 device-side code (Python 3.6+, TensorRT 8.2 ... 10, numpy; CUDA through ctypes)
      scripts/                 build.sh, verify.sh, bench.sh
      docker/                  the device Dockerfiles and run scripts
"""

from __future__ import annotations

import gzip
import json
import os
import tarfile
import warnings
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import torch
from snp_edge.engines._bootstrap import DEFAULT_WRITABLE
from snp_edge.engines.common.degenerate import degenerate_problem, fp16_problem
from snp_edge.engines.common.errors import ManifestError
from snp_edge.engines.common.fileio import Output, apply_umask, current_umask, scratch_dir
from snp_edge.engines.common.ort import ort_session, run_logits
from snp_edge.engines.common.targets import TARGETS, DeviceTarget, resolve_target, width_alignment
from snp_edge.engines.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    hash_files,
    load_manifest,
    validate_manifest,
    verify_bundle,
)

from snp_edge import engines
from snp_edge.errors import SnpEdgeError, SnpEdgeWarning, VerificationFailed
from snp_edge.models import ModelHandle
from snp_edge.summary import widths_of

from . import reference
from .flavors import FlavorContext, check_flavors, merge_writable, writer
from .labels import LABELS_FILE, default_labels, read_labels, write_labels
from .normalize import InputForm
from .onnx_export import ExportResult, export_onnx
from .polygraphy_data import polygraphy_commands, write_polygraphy_golden
from .readme import README_FILE, bundle_readme

ENGINES_DIR = Path(engines.__file__).resolve().parent
DEVICE_DOCKER_FILES = tuple(sorted({f for t in TARGETS.values() for f in (t.dockerfile, t.run_script) if f}))


def _versions() -> dict[str, str]:
    names = {"torch": "torch", "timm": "timm", "onnx": "onnx", "onnxruntime": "onnxruntime", "snp_edge": "snp-edge"}
    out = {}
    for key, dist in names.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = "unknown"
    return out


def _copy_device_code(dest: Path) -> None:
    """engines/ (without caches and scripts), its scripts, and the device Dockerfiles into the bundle; all of
    them are package data, so a non-editable install bundles too."""
    import shutil

    shutil.copytree(ENGINES_DIR, dest / "engines", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "scripts"))
    shutil.copytree(ENGINES_DIR / "scripts", dest / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    docker = resources.files("snp_edge.docker")
    (dest / "docker").mkdir()
    for name in DEVICE_DOCKER_FILES:
        source = docker.joinpath(name)
        if not source.is_file():
            raise SnpEdgeError(f"device file docker/{name} is missing from this snp-edge installation")
        (dest / "docker" / name).write_bytes(source.read_bytes())
        if name.endswith(".sh"):
            (dest / "docker" / name).chmod(0o755 & ~current_umask())


# measured on an H100, FP16, batch 64 (docs/results/gpu-h100/README.md): what misaligned widths cost
ALIGNMENT_EVIDENCE = ("the paper's odd widths ran 0.68-0.82x the unpruned DeiT's speed in FP16 on an H100, "
                      "--round-to 8 1.38-1.47x")


def model_alignment(handle: ModelHandle) -> int:
    """The largest integer dividing every width of ``handle`` (embedding, per-head Q/K and V, FFN): the
    alignment its GEMM dimensions have (1 for the paper's odd widths, 8 or more after ``--round-to 8``)."""
    w = widths_of(handle)
    return width_alignment([w["embed"]] + [b[k] for b in w["blocks"] for k in ("qk", "v", "mlp")])


def check_alignment(handle: ModelHandle, target: str | DeviceTarget) -> int:
    """The model's width alignment; a one-line warning when ``target`` has FP16 tensor cores and the widths
    are not multiples of its ``width_multiple``."""
    spec, alignment = resolve_target(target), model_alignment(handle)
    target = spec.name
    if spec.tensor_cores and alignment % spec.width_multiple:
        warnings.warn(SnpEdgeWarning(
            f"{handle.name}'s widths are multiples of {alignment}, not of {spec.width_multiple}: {target}'s FP16 tensor "
            f"cores will run them slowly ({ALIGNMENT_EVIDENCE}); prune with --round-to {spec.width_multiple}"),
            stacklevel=2)
    return alignment


def _golden_inputs(handle: ModelHandle, images: torch.Tensor | None) -> tuple[torch.Tensor, list[str]]:
    """(golden inputs as the model takes them, bundle paths of the photographs behind their first rows): the
    reference photographs (RGB models), then ``images``; 8 seeded normal images only when there is neither."""
    rows, names = [], []
    if handle.in_chans == 3:
        rows.append(reference.reference_inputs(handle))
        names = [f"{reference.BUNDLE_DIR}/images/{n}" for n in reference.REFERENCE_IMAGES]
    if images is not None:
        rows.append(images.float())
    if not rows:
        size = (handle.in_chans, handle.img_size, handle.img_size)
        rows.append(torch.randn(8, *size, generator=torch.Generator().manual_seed(0)))
    return torch.cat(rows), names


def _write_reference(tmp: Path, names: list[str]) -> None:
    if not names:
        return
    (tmp / reference.BUNDLE_DIR / "images").mkdir(parents=True)
    for name in reference.REFERENCE_IMAGES:
        (tmp / reference.BUNDLE_DIR / "images" / name).write_bytes(reference.image_bytes(name))
    (tmp / reference.BUNDLE_DIR / reference.SOURCES_FILE).write_bytes(reference.image_bytes(reference.SOURCES_FILE))


def _with_fast_agreement(handle: ModelHandle, export: ExportResult, onnx_path: Path) -> dict:
    """The manifest's ``preprocess`` block with ``fast``: the fast path's agreement with the exact one on the
    reference photographs and camera-sized frames of them (export/fast_preprocess.py)."""
    import io

    from PIL import Image
    from snp_edge.engines.preprocess import spec_from_manifest

    from .fast_preprocess import measure_fast_agreement

    pre = reference.preprocess_spec(handle)
    inp = {"normalization": export.input_form.to_dict()} if export.input_form is not None else {}
    spec = spec_from_manifest({"schema_version": SCHEMA_VERSION, "preprocess": pre, "onnx": {"input": inp}})
    photos = [np.asarray(Image.open(io.BytesIO(reference.image_bytes(n))).convert("RGB"))
              for n in reference.REFERENCE_IMAGES]
    return {**pre, "fast": measure_fast_agreement(str(onnx_path), spec, "input", "logits", photos)}


def make_manifest(handle: ModelHandle, target: str, folder: Path, export: ExportResult, labels: str,
                  extra: dict | None = None) -> dict:
    """The manifest of the bundle being assembled in ``folder`` (its files already written); ``extra`` adds
    optional fields (readme, flavors, ...) and golden entries."""
    size = [-1, handle.in_chans, handle.img_size, handle.img_size]
    extra = dict(extra or {})
    model = {"base_model": handle.base_model, "pruned": handle.pruned, "gmacs": round(handle.gmacs, 4),
             "params": handle.params, "widths": widths_of(handle), "width_alignment": model_alignment(handle),
             "accuracy_meaningful": handle.accuracy_meaningful}
    if handle.notice:
        model["notice"] = handle.notice
    inp = {"name": "input", "shape": size, "layout": "NCHW", "dtype": "float32"}
    if export.input_form is not None:
        inp["normalization"] = export.input_form.to_dict()
    return {
        "schema_version": SCHEMA_VERSION,
        "target": target,
        "created": build_time().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model,
        "onnx": {"file": "model.onnx", "opset": export.opset, "input": inp,
                 "output": {"name": "logits", "shape": [-1, handle.num_classes]}, "fp16_safe": export.fp16_safe,
                 "fp32_nodes": export.fp32_nodes},
        "preprocess": reference.preprocess_spec(handle),
        "num_classes": handle.num_classes,
        "golden": {"inputs": "golden/inputs.npy", "outputs": "golden/outputs.npy", **extra.pop("golden", {})},
        "labels": LABELS_FILE,
        "labels_source": labels,
        "versions": _versions(),
        **extra,
        "files": hash_files(str(folder)),
    }


def bundle_output(out: str | Path, archive: bool = False, force: bool = False) -> Output:
    """The checked :class:`Output` of a bundle: the folder ``out``, or ``out.tar.gz`` with ``archive``."""
    out = Path(out)
    final = out.with_name(out.name + ".tar.gz") if archive and not out.name.endswith(".tar.gz") else out
    return Output(final, force, kind="file" if archive else "dir")


def make_bundle(handle: ModelHandle, target: str, out: str | Path, opset: int | None = None,
                images: torch.Tensor | None = None, fp16_safe: bool = False, archive: bool = False,
                force: bool = False, labels: str | Path | None = None, input_form: InputForm | None = None,
                flavors: tuple[str, ...] | list[str] = (), photos: list | None = None, precision: str = "fp16",
                int8=None) -> Path:
    """Assemble a verified bundle for ``target`` in ``out`` (a folder, or ``out`` + .tar.gz with ``archive``).

    Golden inputs, in the ONNX's input form: the reference photographs preprocessed on the host (RGB models),
    then ``images`` (as the model takes them, normalised, e.g. calibration images); 8 seeded normal images
    only when there is neither.
    ``fp16_safe``: FP16 builds of this bundle pin LayerNorm and softmax layers to FP32 by default.
    ``labels``: a file of class labels, one per line (default: ImageNet names for ImageNet models, else numbered).
    ``input_form``: what model.onnx takes (default: normalised input; ``InputForm.raw(...)`` folds it in).
    ``flavors``: names from :data:`export.flavors.FLAVORS`, each adding its runtime's files in its folder.
    ``photos``: reference photographs (name, HxWx3 uint8 RGB) for measurements that need real images.
    ``precision`` "int8": model.onnx is the target's Q/DQ model (:mod:`export.int8_bundle`, ``int8``: its
    :class:`~export.int8_bundle.Int8Options`), golden outputs and top-k are its own, FP32 logits beside.
    """
    from .int8_bundle import Int8Options, check_int8, quantize_bundle_model, top_k_of

    check_int8(target, precision)
    spec = resolve_target(target)  # once; the record goes down
    chosen = check_flavors(list(flavors), target)
    check_alignment(handle, spec)
    names, labels_source = (read_labels(labels, handle.num_classes), str(labels)) if labels else default_labels(handle)
    output = bundle_output(out, archive, force)
    final = Path(output.shown)
    with output, scratch_dir(final) as scratch:
        tmp = Path(scratch if archive else output.stage())
        reference.preprocess_spec(handle)  # refuses, before any work, preprocessing the device cannot do
        check_fp16_weights(handle)  # the device builds FP16 engines (--precision fp16, the default)
        images, image_names = _golden_inputs(handle, images)
        export = export_onnx(handle, tmp / "model.onnx", opset=opset or spec.opset, parser=spec.trt_parser,
                             fp16_safe=fp16_safe, images=images, target=spec, input_form=input_form)
        (tmp / "golden").mkdir()
        inputs = export.input_form.encode(images, handle.data_config["mean"], handle.data_config["std"])
        outputs = run_logits(ort_session(str(tmp / "model.onnx")), inputs)
        if not np.isfinite(outputs).all():
            raise SnpEdgeError("the ONNX model gives NaN or Inf logits on the golden inputs: refusing to bundle")
        check_golden_outputs(outputs)
        quantization = None
        if precision == "int8":  # model.onnx becomes the Q/DQ model; its logits are the golden outputs
            outputs, quantization = quantize_bundle_model(tmp, inputs, outputs, target, int8 or Int8Options())
            check_golden_outputs(outputs)
        np.save(tmp / "golden" / "inputs.npy", inputs)
        if not np.isfinite(outputs).all():
            raise VerificationFailed("the golden outputs hold NaN or infinite logits; no bundle written")
        np.save(tmp / "golden" / "outputs.npy", outputs)
        poly_in, poly_out = write_polygraphy_golden(tmp, inputs, outputs)
        write_labels(names, tmp)
        _write_reference(tmp, image_names)
        ctx = FlavorContext(handle, spec, tmp, export, images, names, fp16_safe, list(photos or []))
        results = {f.name: writer(f)(ctx) for f in chosen}
        golden = {"polygraphy_inputs": poly_in, "polygraphy_outputs": poly_out,
                  "top_k": reference.top_k(handle, images)}
        if image_names:
            golden["images"] = image_names
        extra = {"golden": golden, "readme": README_FILE}
        if quantization:
            golden["top_k"], extra["quantization"] = top_k_of(outputs, golden["top_k"]["k"]), quantization
        if image_names:
            extra["preprocess"] = _with_fast_agreement(handle, export, tmp / "model.onnx")
        if results:
            extra["flavors"] = {name: r.manifest for name, r in results.items()}
        extra["writable"] = merge_writable(DEFAULT_WRITABLE, *(r.writable for r in results.values()))
        draft = make_manifest(handle, target, tmp, export, labels_source, extra)
        commands = polygraphy_commands("model.onnx", draft["onnx"]["input"]["shape"], len(inputs), outputs)
        (tmp / README_FILE).write_text(bundle_readme(draft, commands, [r.readme for r in results.values()],
                                                     handle.notice), encoding="utf-8")
        _copy_device_code(tmp)
        manifest = validate_manifest(make_manifest(handle, target, tmp, export, labels_source, extra))
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        check_bundle(tmp)
        if archive:
            apply_umask(tmp)  # the members' modes too (package files keep their installed modes otherwise)
            tar_path = output.stage()
            write_archive(Path(tar_path), tmp, final.name.removesuffix(".tar.gz"), int(build_time().timestamp()))
        output.publish()
    return final


def check_fp16_weights(handle: ModelHandle) -> None:
    """Refuse a model with a weight or buffer outside FP16's range, naming the tensor: the device's FP16 engine
    would overflow it (a 1e38-scaled weight makes every logit 0 in PyTorch and ONNX Runtime alike)."""
    for name, tensor in list(handle.model.named_parameters()) + list(handle.model.named_buffers()):
        if tensor.is_floating_point() and tensor.numel():
            problem = fp16_problem(name, tensor.detach().abs().max().double().cpu().numpy())
            if problem is not None:
                raise SnpEdgeError(f"model weight {problem}: the device builds FP16 engines; refusing to bundle")


def check_golden_outputs(outputs: np.ndarray) -> None:
    """Golden logits that carry information and fit in FP16 (engines/common/degenerate.py)."""
    problem = degenerate_problem(outputs) or fp16_problem("golden logits", outputs)
    if problem is not None:
        raise SnpEdgeError(f"the ONNX model's outputs on the golden images are degenerate or out of range: {problem}; "
                           "refusing to bundle")


def build_time() -> datetime:
    """The bundle's ``created`` time: ``$SOURCE_DATE_EPOCH`` where set (reproducible builds), else now (UTC,
    whole seconds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise SnpEdgeError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, got {epoch!r}") from None
    return datetime.now(timezone.utc).replace(microsecond=0)


def write_archive(tar_path: Path, folder: Path, arcname: str, mtime: int) -> None:
    """``folder`` as a reproducible .tar.gz: members sorted by path, every mtime ``mtime``, owner 0/0 without
    names, gzip header without file name or time; the same tree always gives the same bytes."""
    paths = [folder] + sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix())
    with open(tar_path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            rel = path.relative_to(folder).as_posix()
            info = tar.gettarinfo(str(path), arcname=arcname if rel == "." else f"{arcname}/{rel}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def check_bundle(folder: str | Path) -> dict:
    """Validate a bundle folder's manifest and every file's sha256; returns the manifest."""
    try:
        manifest = verify_bundle(str(folder), load_manifest(str(folder)))
    except ManifestError as exc:
        raise SnpEdgeError(str(exc)) from None
    return manifest
