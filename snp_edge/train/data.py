"""ImageFolder train/val data with timm's transforms, sharded across processes for DistributedDataParallel.

A data folder holds ``train/<class>/*.png`` and ``val/<class>/*.png`` (torchvision ImageFolder layout);
classes are the sorted sub-folder names of ``train/`` and ``val/`` must have the same ones. Images are
read with :func:`snp_edge.calib.read_rgb`: a corrupt file or a decompression bomb ends the run with one
line naming the file, also from a DataLoader worker process.

Data made at run time (:class:`GeneratedData`, e.g. experiments/composed.py) is accepted wherever a folder
is: its datasets go through the same transforms, and a train split with ``set_epoch`` draws new images
every epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from timm.data import create_transform
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..calib import IMAGE_EXTENSIONS, read_rgb
from ..errors import SnpEdgeError, first_line
from .config import AugConfig


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _image_folder(root: Path, transform):
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(root), transform=transform, loader=read_rgb, is_valid_file=_is_image)
    except (FileNotFoundError, OSError) as exc:
        raise SnpEdgeError(f"data folder {root} is not an ImageFolder: {first_line(exc)}") from None


@runtime_checkable
class GeneratedData(Protocol):
    """Data generated at run time instead of read from a folder.

    ``dataset(split, transform)`` returns the ``"train"`` or ``"val"`` Dataset: items ``(transform(PIL image),
    class index)``, a ``classes`` list (sorted names) and, optionally, ``set_epoch(epoch)`` (called before every
    training epoch: new images per epoch). ``str()`` names it in logs and checkpoints.
    """

    def dataset(self, split: str, transform) -> Dataset: ...


def split_dir(data: str | Path, split: str) -> Path:
    """``data/split`` checked to exist; for ``val``, ``data`` itself is accepted when it has no train/val."""
    data = Path(data)
    if not data.is_dir():
        raise SnpEdgeError(f"data folder not found: {data}")
    path = data / split
    if path.is_dir():
        return path
    if split == "val" and not (data / "train").is_dir():
        return data  # a bare ImageFolder: evaluate on it directly
    raise SnpEdgeError(f"data folder {data} has no {split}/ sub-folder (expected {data}/{split}/<class>/<image>)")


def train_transform(data_config: dict, aug: AugConfig):
    """timm training transform for a model's ``data_config`` (input_size, mean, std, interpolation)."""
    if aug.no_aug:
        return eval_transform(data_config)
    return create_transform(
        data_config["input_size"], is_training=True, scale=aug.scale, ratio=aug.ratio, hflip=aug.hflip,
        color_jitter=aug.color_jitter, auto_augment=aug.auto_augment, interpolation=data_config["interpolation"],
        mean=data_config["mean"], std=data_config["std"], re_prob=aug.re_prob, re_mode="pixel", re_count=1)


def eval_transform(data_config: dict):
    """timm eval transform: resize to input/crop_pct, centre crop, normalise."""
    return create_transform(**data_config, is_training=False)


def load_split(data: str | Path | GeneratedData, split: str, transform, num_classes: int | None = None,
               classes: list[str] | None = None):
    """The ``split`` ImageFolder of ``data`` (or :class:`GeneratedData`'s split); its classes are checked
    against the model and the train split."""
    if isinstance(data, GeneratedData):
        ds, where = data.dataset(split, transform), f"{data} ({split})"
    else:
        ds = _image_folder(split_dir(data, split), transform)
        where = ds.root
    if len(ds) == 0:
        raise SnpEdgeError(f"data {where} holds no images")
    if num_classes is not None and len(ds.classes) != num_classes:
        raise SnpEdgeError(f"data {where} has {len(ds.classes)} classes but the model has {num_classes} outputs")
    if classes is not None and ds.classes != classes:
        raise SnpEdgeError(f"data {where} has classes {ds.classes[:5]}... unlike train/ {classes[:5]}...")
    return ds


def train_loader(ds: Dataset, batch_size: int, world: int = 1, rank: int = 0, seed: int = 0, workers: int = 0,
                 drop_last: bool = True) -> DataLoader:
    """Shuffled loader of per-process ``batch_size``; call ``loader.sampler.set_epoch(e)`` every epoch.

    The permutation depends on ``seed`` and the epoch only, and process ``rank`` takes every ``world``-th
    index of it, so the union of the processes' step-t batches is the step-t batch of a single process
    with ``world * batch_size`` images.
    """
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop_last,
                      persistent_workers=False, pin_memory=torch.cuda.is_available())


def eval_loader(ds: Dataset, batch_size: int, world: int = 1, rank: int = 0, workers: int = 0) -> DataLoader:
    """In-order loader over this process's shard (every ``world``-th image: no padding, no duplicates)."""
    shard = Subset(ds, range(rank, len(ds), world)) if world > 1 else ds
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=torch.cuda.is_available())
