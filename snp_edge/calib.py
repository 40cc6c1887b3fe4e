"""Calibration images for the data-driven scores: an image folder, an ``.npy`` array, or generated noise.

Images go through the model's own timm eval preprocessing (resize, centre crop, normalise). The
selection is a seeded random sample of the sorted file list, so the same inputs and seed give the
same images and hence the same pruned model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from timm.data import create_transform

from .errors import SnpEdgeError, first_line

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
SYNTHETIC_NOTICE = "no --calib given: data-driven scores use seeded noise images, not real data"


@dataclass
class Calibration:
    """``images``: (N, C, H, W) float32, preprocessed; ``source``: where they came from, for reports."""

    images: torch.Tensor
    source: str
    notice: str | None = None


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (ImageFolder layout or flat), sorted by relative path."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _from_folder(folder: Path, n: int, data_config: dict, seed: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        files = list_images(folder)
    except OSError as exc:
        raise SnpEdgeError(f"cannot read calibration folder {folder}: {exc}") from None
    if not files:
        raise SnpEdgeError(f"calibration folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    if len(files) > n:
        files = sorted(random.Random(seed).sample(files, n))
    transform = create_transform(**data_config, is_training=False)
    out = []
    for path in files:
        try:
            with Image.open(path) as img:
                out.append(transform(img.convert("RGB")))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise SnpEdgeError(f"corrupt or unreadable calibration image {path}: {exc}") from None
    images = torch.stack(out)
    if images.shape[1] != data_config["input_size"][0]:
        raise SnpEdgeError(f"calibration images have {images.shape[1]} channels, the model takes "
                           f"{data_config['input_size'][0]}")
    return images


def _from_npy(path: Path, n: int, data_config: dict, seed: int) -> torch.Tensor:
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise SnpEdgeError(f"cannot read calibration array {path}: {first_line(exc)}") from None
    want = tuple(data_config["input_size"])
    if array.ndim != 4 or tuple(array.shape[1:]) != want:
        raise SnpEdgeError(f"calibration array {path} has shape {tuple(array.shape)}; expected (N, {want[0]}, "
                           f"{want[1]}, {want[2]}) preprocessed NCHW float32")
    if array.dtype not in (np.float32, np.float64, np.float16):
        raise SnpEdgeError(f"calibration array {path} has dtype {array.dtype}; expected float32")
    if array.shape[0] == 0:
        raise SnpEdgeError(f"calibration array {path} is empty")
    rows = sorted(random.Random(seed).sample(range(array.shape[0]), n)) if array.shape[0] > n else slice(None)
    return torch.from_numpy(np.ascontiguousarray(array[rows], dtype=np.float32))


def load_calibration(source: str | Path | None, n: int, data_config: dict, seed: int = 0) -> Calibration:
    """Up to ``n`` preprocessed calibration images from ``source`` (folder, ``.npy``, or None for noise)."""
    if n < 1:
        raise SnpEdgeError(f"--calib-images must be >= 1, got {n}")
    if source is None:
        gen = torch.Generator().manual_seed(seed)
        return Calibration(torch.randn(n, *data_config["input_size"], generator=gen), "noise", SYNTHETIC_NOTICE)
    path = Path(source)
    if path.is_dir():
        images = _from_folder(path, n, data_config, seed)
    elif path.suffix == ".npy" and path.is_file():
        images = _from_npy(path, n, data_config, seed)
    elif not path.exists():
        raise SnpEdgeError(f"calibration source not found: {path}")
    else:
        raise SnpEdgeError(f"calibration source {path} is neither an image folder nor an .npy array")
    return Calibration(images, str(path))
