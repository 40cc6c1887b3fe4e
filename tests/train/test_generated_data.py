"""Data generated at run time (snp_edge.train.data.GeneratedData) trains like a folder: the same transforms,
new training images every epoch through ``set_epoch``, checked classes, named in the checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import Dataset

from snp_edge.errors import SnpEdgeError
from snp_edge.saved import load_pruned_handle
from snp_edge.train.config import AugConfig, FinetuneConfig
from snp_edge.train.data import GeneratedData
from snp_edge.train.finetune import finetune


class BrightThird(Dataset):
    """16 x 16 RGB noise with one bright third (the class: left, middle, right), new images per epoch."""

    classes = ["left", "middle", "right"]

    def __init__(self, n: int, transform, seed: int, epochs_seen: list[int]) -> None:
        self.n, self.transform, self.seed, self.epochs_seen = n, transform, seed, epochs_seen
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)
        rng = np.random.default_rng([self.seed, epoch])
        self.labels = np.arange(self.n) % 3
        self.images = rng.integers(0, 60, (self.n, 16, 16, 3), dtype=np.uint8)
        for img, c in zip(self.images, self.labels, strict=True):
            img[:, 5 * c:5 * c + 6] += 150

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


class Thirds:
    def __init__(self) -> None:
        self.train_epochs: list[int] = []
        self.splits: dict[str, BrightThird] = {}

    def __str__(self) -> str:
        return "bright thirds (generated)"

    def dataset(self, name: str, transform) -> BrightThird:
        seen = self.train_epochs if name == "train" else []
        self.splits[name] = BrightThird(48 if name == "train" else 24, transform, {"train": 0, "val": 1}[name], seen)
        return self.splits[name]


def test_finetune_on_generated_data_draws_new_images_every_epoch(tiny_pruned, tmp_path):
    source = Thirds()
    assert isinstance(source, GeneratedData)
    handle = load_pruned_handle(tiny_pruned)
    cfg = FinetuneConfig(epochs=2, batch_size=8, lr=1e-3, warmup_epochs=0, mixup=0, cutmix=0,
                         aug=AugConfig(no_aug=True), drop_path=0.0, distill="none", workers=0, progress=False)
    result = finetune(handle, source, tmp_path / "run", cfg)
    assert source.train_epochs == [0, 0, 1]  # built at epoch 0, then set before each of the 2 epochs
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1] and all(np.isfinite(r["train_loss"]) for r in rows)
    assert 0 <= result["best"] <= 100
    desc = json.loads((tmp_path / "run" / "last" / "model.json").read_text())
    assert desc["finetune"]["data"] == "bright thirds (generated)"


def test_a_folder_path_is_not_generated_data(tmp_path):
    """A str or Path (str has a ``split`` method) is a folder, never taken for generated data."""
    assert not isinstance(str(tmp_path), GeneratedData) and not isinstance(tmp_path, GeneratedData)
    with pytest.raises(SnpEdgeError, match="data folder not found"):
        from snp_edge.train.data import load_split

        load_split(str(tmp_path / "missing"), "train", lambda im: im)


def test_generated_data_with_other_classes_is_refused_in_one_line(tiny_pruned, tmp_path):
    class Two(Thirds):
        def dataset(self, name, transform):
            ds = super().dataset(name, transform)
            ds.classes = ["a", "b"]
            return ds

    handle = load_pruned_handle(tiny_pruned)
    with pytest.raises(SnpEdgeError, match=r"^data bright thirds \(generated\) \(train\) has 2 classes but the "
                                           r"model has 3 outputs$"):
        finetune(handle, Two(), tmp_path / "run", FinetuneConfig(epochs=1, batch_size=8, distill="none", workers=0, progress=False))
    assert not (tmp_path / "run").exists()
