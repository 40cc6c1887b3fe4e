"""Reference photographs for device bundles, and the host-side truth for them.

Four public-domain / CC0 photographs (``export/reference/``, sources in ``SOURCES.txt``) travel in every
bundle of an RGB model as ``reference/images/*.png``. On the host each is preprocessed by timm's own eval
transform (the pipeline ``snp-edge`` uses everywhere) and run through the PyTorch model; the tensors become
the first rows of the bundle's golden inputs and the top-k classes its ``golden.top_k``, so the device can
check its preprocessing, its outputs and its top-k against the same fixtures, end to end.
"""

from __future__ import annotations

import math
from importlib import resources

import torch
from snp_edge.engines.preprocess import INTERPOLATIONS, REFERENCE_TEXT, RESIZE_MODES, default_spec

from snp_edge.errors import SnpEdgeError
from snp_edge.models import ModelHandle

REFERENCE_IMAGES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.png")
SOURCES_FILE = "SOURCES.txt"
BUNDLE_DIR = "reference"  # in the bundle: reference/images/NAME, reference/SOURCES.txt
TOP_K = 5
TOP_K_SOURCE = "softmax of the host's PyTorch FP32 logits (timm eval transform on the PIL image)"
_CROP_TO_RESIZE = {"center": "shorter_side", "squash": "squash"}  # timm crop_mode -> manifest resize_mode


def preprocess_spec(handle: ModelHandle) -> dict:
    """The manifest's ``preprocess`` block (schema 2) for ``handle``: timm's eval transform spelled out."""
    cfg = handle.data_config
    size = cfg["input_size"]
    if size[1] != size[2]:
        raise SnpEdgeError(f"input size {size[1]}x{size[2]}: device bundles take square inputs only")
    crop_mode = cfg.get("crop_mode") or "center"
    if crop_mode not in _CROP_TO_RESIZE or cfg["interpolation"] not in INTERPOLATIONS:
        raise SnpEdgeError(f"timm preprocessing crop_mode={crop_mode!r}, interpolation={cfg['interpolation']!r} "
                           f"has no device implementation (resize modes {', '.join(RESIZE_MODES)}, filters "
                           f"{', '.join(sorted(INTERPOLATIONS))})")
    crop = int(size[-1])
    spec = default_spec([float(x) for x in cfg["mean"]], [float(x) for x in cfg["std"]],
                        int(math.floor(crop / cfg["crop_pct"])), crop, cfg["interpolation"])
    spec["resize_mode"] = _CROP_TO_RESIZE[crop_mode]
    spec["reference"] = REFERENCE_TEXT
    return spec


def image_bytes(name: str) -> bytes:
    """A reference image (or SOURCES.txt) as shipped in this installation (package data)."""
    source = resources.files("snp_edge.export").joinpath("reference", name)
    if not source.is_file():
        raise SnpEdgeError(f"reference file export/reference/{name} is missing from this snp-edge installation")
    return source.read_bytes()


def reference_inputs(handle: ModelHandle) -> torch.Tensor:
    """(len(REFERENCE_IMAGES), 3, H, W) float32: every reference image through timm's eval transform."""
    import io

    from PIL import Image
    from timm.data import create_transform

    transform = create_transform(**handle.data_config, is_training=False)
    rows = []
    for name in REFERENCE_IMAGES:
        with Image.open(io.BytesIO(image_bytes(name))) as img:
            rows.append(transform(img.convert("RGB")))
    return torch.stack(rows).float()


@torch.no_grad()
def top_k(handle: ModelHandle, inputs: torch.Tensor, k: int = TOP_K) -> dict:
    """``golden.top_k`` for ``inputs``: the k most probable classes per row from the PyTorch model (FP32)."""
    k = min(k, handle.num_classes)
    model = handle.model.eval()
    logits = torch.cat([model(inputs[i:i + 8].float()) for i in range(0, len(inputs), 8)]).double()
    if not torch.isfinite(logits).all():
        raise SnpEdgeError("the model gives NaN or Inf logits on the reference images: not a usable model")
    probs = torch.softmax(logits, dim=1)
    values, ids = torch.topk(probs, k, dim=1)
    return {"k": k, "class_ids": ids.tolist(), "probs": [[round(float(p), 8) for p in row] for row in values],
            "source": TOP_K_SOURCE}
