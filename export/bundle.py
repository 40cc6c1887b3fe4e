"""The device bundle: everything a Jetson Nano or an RTX 3090 box needs, and nothing from the repository.

Layout (see ``engines/manifest.py`` for the manifest schema)::

    BUNDLE/
      manifest.json            schema_version, model, onnx I/O, preprocessing, versions, sha256 of every file
      model.onnx
      golden/inputs.npy        float32 (N, C, H, W) preprocessed images
      golden/outputs.npy       float32 (N, classes) ONNX Runtime FP32 logits for them
      engines/                 device-side code (Python 3.6 + TensorRT 8.2 ... 10, numpy, pycuda)
      scripts/                 build.sh, verify.sh, bench.sh
      docker/                  the device Dockerfiles and run scripts
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tarfile
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

import engines
from engines.errors import ManifestError
from engines.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    hash_files,
    load_manifest,
    validate_manifest,
    verify_files,
)
from snp_edge.errors import SnpEdgeError
from snp_edge.models import ModelHandle
from snp_edge.saved import check_output_dir, publish_dir
from snp_edge.summary import widths_of

from .onnx_export import export_onnx
from .parity import ort_session, run_ort
from .trt_ops import DEVICE_TRT

DEFAULT_OPSET = {"jetson-nano": 13, "rtx3090": 17}
ENGINES_DIR = Path(engines.__file__).resolve().parent
# docker/ beside the packages in a clone (editable install); the host image points here with the variable
DOCKER_DIR = Path(os.environ.get("SNP_EDGE_DOCKER_DIR", ENGINES_DIR.parent / "docker"))
DEVICE_DOCKER_FILES = ("Dockerfile.jetson", "Dockerfile.trt-x86", "run-jetson.sh", "run-x86.sh")


def _versions() -> dict[str, str]:
    names = {"torch": "torch", "timm": "timm", "onnx": "onnx", "onnxruntime": "onnxruntime", "snp_edge": "snp-edge"}
    out = {}
    for key, dist in names.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = "unknown"
    return out


def _preprocess(handle: ModelHandle) -> dict:
    cfg = handle.data_config
    crop = int(cfg["input_size"][-1])
    return {"mean": [float(x) for x in cfg["mean"]], "std": [float(x) for x in cfg["std"]],
            "resize": int(math.floor(crop / cfg["crop_pct"])), "crop": crop, "interpolation": cfg["interpolation"]}


def _copy_device_code(dest: Path) -> None:
    """engines/ (without caches), its scripts, and the device Dockerfiles into the bundle."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "scripts")
    shutil.copytree(ENGINES_DIR, dest / "engines", ignore=ignore)
    scripts = ENGINES_DIR / "scripts"
    if scripts.is_dir():
        shutil.copytree(scripts, dest / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    missing = [f for f in DEVICE_DOCKER_FILES if not (DOCKER_DIR / f).is_file()]
    if missing:
        raise SnpEdgeError(f"device files missing from {DOCKER_DIR}: {', '.join(missing)} (install snp-edge "
                           "from a clone with `pip install -e .`)")
    (dest / "docker").mkdir()
    for name in DEVICE_DOCKER_FILES:
        shutil.copy2(DOCKER_DIR / name, dest / "docker" / name)


def make_manifest(handle: ModelHandle, target: str, folder: Path, opset: int, fp16_safe: bool) -> dict:
    """The manifest of the bundle being assembled in ``folder`` (its files already written)."""
    size = [-1, handle.in_chans, handle.img_size, handle.img_size]
    model = {"base_model": handle.base_model, "pruned": handle.pruned, "gmacs": round(handle.gmacs, 4),
             "params": handle.params, "widths": widths_of(handle), "accuracy_meaningful": handle.accuracy_meaningful}
    if handle.notice:
        model["notice"] = handle.notice
    return {
        "schema_version": SCHEMA_VERSION,
        "target": target,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model,
        "onnx": {"file": "model.onnx", "opset": opset,
                 "input": {"name": "input", "shape": size, "layout": "NCHW", "dtype": "float32"},
                 "output": {"name": "logits", "shape": [-1, handle.num_classes]}, "fp16_safe": fp16_safe},
        "preprocess": _preprocess(handle),
        "num_classes": handle.num_classes,
        "golden": {"inputs": "golden/inputs.npy", "outputs": "golden/outputs.npy"},
        "versions": _versions(),
        "files": hash_files(str(folder)),
    }


def make_bundle(handle: ModelHandle, target: str, out: str | Path, opset: int | None = None,
                images: torch.Tensor | None = None, fp16_safe: bool = False, archive: bool = False,
                force: bool = False) -> Path:
    """Assemble a verified bundle for ``target`` in ``out`` (a folder, or ``out`` + .tar.gz with ``archive``).

    ``images`` become the golden inputs (default: 8 seeded normal images of the model's input size).
    """
    if target not in DEVICE_TRT:
        raise SnpEdgeError(f"unknown target {target!r}; use one of {', '.join(DEVICE_TRT)}")
    opset = opset or DEFAULT_OPSET[target]
    out = Path(out)
    final = out.with_name(out.name + ".tar.gz") if archive and not out.name.endswith(".tar.gz") else out
    check_output_dir(final, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.resolve().parent))
    try:
        if images is None:
            size = (handle.in_chans, handle.img_size, handle.img_size)
            images = torch.randn(8, *size, generator=torch.Generator().manual_seed(0))
        export_onnx(handle, tmp / "model.onnx", opset=opset, target=DEVICE_TRT[target], fp16_safe=fp16_safe,
                    images=images)
        (tmp / "golden").mkdir()
        inputs = images.numpy().astype(np.float32)
        np.save(tmp / "golden" / "inputs.npy", inputs)
        np.save(tmp / "golden" / "outputs.npy", run_ort(ort_session(str(tmp / "model.onnx")), inputs))
        _copy_device_code(tmp)
        manifest = validate_manifest(make_manifest(handle, target, tmp, opset, fp16_safe))
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        check_bundle(tmp)
        if archive:
            tar_tmp = tmp.with_suffix(".tar.gz")
            with tarfile.open(tar_tmp, "w:gz") as tar:
                tar.add(tmp, arcname=final.name.removesuffix(".tar.gz"))
            os.replace(tar_tmp, final)
        else:
            publish_dir(tmp, final, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.with_suffix(".tar.gz").unlink(missing_ok=True)
    return final


def check_bundle(folder: str | Path) -> dict:
    """Validate a bundle folder's manifest and every file's sha256; returns the manifest."""
    try:
        manifest = load_manifest(str(folder))
        verify_files(str(folder), manifest)
    except ManifestError as exc:
        raise SnpEdgeError(str(exc)) from None
    return manifest
