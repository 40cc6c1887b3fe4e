"""Calibration images for the data-driven scores: an image folder, an ``.npy`` array, or generated noise.

Images go through the model's own timm eval preprocessing (resize, centre crop, normalise). The
selection is a seeded random sample of the sorted file list, so the same inputs and seed give the
same images and hence the same pruned model.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from timm.data import create_transform

from .errors import SnpEdgeError, first_line
from .memory import check_allocation

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
SYNTHETIC_NOTICE = ("pruned without calibration images (snp-edge prune --calib): its data-driven scores came "
                    "from seeded noise images, not real data")


@dataclass
class Calibration:
    """``images``: (N, C, H, W) float32, preprocessed; ``source``: where they came from, for reports."""

    images: torch.Tensor
    source: str
    notice: str | None = None


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (ImageFolder layout or flat), sorted by relative path."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


class ImageError(SnpEdgeError):
    """An image file that cannot be decoded, or one too large to decode safely (a decompression bomb).

    DataLoader workers re-raise exceptions in the main process as ``type(msg)`` with the worker's traceback
    in ``msg``; the original one-line message is taken back out of it here."""

    def __init__(self, message: str) -> None:
        lines = str(message).strip().splitlines()
        if len(lines) > 1 and lines[0].startswith("Caught ") and "worker" in lines[0]:
            message = lines[-1].split(": ", 1)[-1]
        super().__init__(message)


def read_rgb(path: str | Path, what: str = "image"):
    """The image file ``path`` as an RGB PIL image, decoded completely; :class:`ImageError` for a corrupt or
    truncated file and for one over Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{what} {path} is too large to decode safely: {first_line(exc)}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise ImageError(f"corrupt or unreadable {what} {path}: {first_line(exc)}") from None


def _check_fits(n: int, data_config: dict, source: str) -> None:
    nbytes = n * 4 * math.prod(data_config["input_size"])
    check_allocation(nbytes, f"{n} calibration images from {source}", "use fewer --calib-images")


def _from_folder(folder: Path, n: int, data_config: dict, seed: int) -> torch.Tensor:
    try:
        files = list_images(folder)
    except OSError as exc:
        raise SnpEdgeError(f"cannot read calibration folder {folder}: {exc}") from None
    if not files:
        raise SnpEdgeError(f"calibration folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    if len(files) > n:
        files = sorted(random.Random(seed).sample(files, n))
    _check_fits(len(files), data_config, str(folder))
    transform = create_transform(**data_config, is_training=False)
    images = torch.stack([transform(read_rgb(path, "calibration image")) for path in files])
    if images.shape[1] != data_config["input_size"][0]:
        raise SnpEdgeError(f"calibration images have {images.shape[1]} channels, the model takes "
                           f"{data_config['input_size'][0]}")
    return images


MAX_CALIB_ABS = 1e4  # |value| of a preprocessed calibration image: normalised pixels, or 0..255 at most


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
    _check_fits(min(n, array.shape[0]), data_config, str(path))
    rows = sorted(random.Random(seed).sample(range(array.shape[0]), n)) if array.shape[0] > n else slice(None)
    images = np.ascontiguousarray(array[rows], dtype=np.float32)
    finite = np.isfinite(images)
    if not finite.all():
        first = int(np.argwhere(~finite.reshape(len(images), -1).all(axis=1))[0][0])
        raise SnpEdgeError(f"calibration array {path} holds NaN or infinite values (image {first} of those "
                           "drawn); calibration images must be finite")
    peak = float(np.abs(images).max())
    if peak > MAX_CALIB_ABS:
        raise SnpEdgeError(f"calibration array {path} holds values up to {peak:.3g}; preprocessed images lie within "
                           f"+-{MAX_CALIB_ABS:g} (normalised pixels are a few units)")
    return torch.from_numpy(images)


@torch.no_grad()
def check_model_outputs(model: torch.nn.Module, images: torch.Tensor, limit: int = 16) -> None:
    """Refuse scoring a model whose unpruned outputs on (up to ``limit``) calibration images are degenerate:
    non-finite, all logits of an image equal, or the same for every image (engines/common/degenerate.py)."""
    from snp_edge.engines.common.degenerate import degenerate_problem

    logits = model.eval()(images[:limit])
    problem = degenerate_problem(logits.double().numpy()) if logits.ndim == 2 else None
    if problem is not None:
        raise SnpEdgeError(f"the unpruned model's outputs on the calibration images are degenerate: {problem}; "
                           "refusing to score it (check the weights and the calibration data)")


def load_calibration(source: str | Path | None, n: int, data_config: dict, seed: int = 0) -> Calibration:
    """Up to ``n`` preprocessed calibration images from ``source`` (folder, ``.npy``, or None for noise).

    Refused before anything is allocated: more images than the memory available holds; refused after
    reading: NaN or infinite values, corrupt images, decompression bombs."""
    if n < 1:
        raise SnpEdgeError(f"--calib-images must be >= 1, got {n}")
    if source is None:
        _check_fits(n, data_config, "noise")
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
