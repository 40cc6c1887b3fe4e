"""Class labels a bundle ships as ``labels.txt``: one label per line, line i naming class i.

ImageNet-trained models (any subset timm knows, e.g. imagenet-1k) get timm's class descriptions ("tench,
Tinca tinca"), offline; other models get ``--labels FILE`` (one label per line) or numbered labels
("class_0", ...).
"""

from __future__ import annotations

from pathlib import Path

from snp_edge.errors import SnpEdgeError
from snp_edge.models import ModelHandle

LABELS_FILE = "labels.txt"


def default_labels(handle: ModelHandle) -> tuple[list[str], str]:
    """(labels, where they came from) for ``handle``'s classes."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(handle.model)
    if subset:
        info = ImageNetInfo(subset)
        if info.num_classes() == handle.num_classes:
            return [info.index_to_description(i) for i in range(handle.num_classes)], f"timm ImageNetInfo({subset})"
    return [f"class_{i}" for i in range(handle.num_classes)], "numbered (no label set known for these classes)"


def read_labels(path: str | Path, num_classes: int) -> list[str]:
    """Labels from a file of one label per line; the count must equal the model's classes."""
    path = Path(path)
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise SnpEdgeError(f"cannot read labels {path}: {exc}") from None
    while labels and not labels[-1]:
        labels.pop()
    if len(labels) != num_classes:
        raise SnpEdgeError(f"labels {path} has {len(labels)} lines; the model has {num_classes} classes")
    if not all(labels):
        raise SnpEdgeError(f"labels {path}: line {labels.index('') + 1} is empty")
    return labels


def write_labels(labels: list[str], folder: Path) -> str:
    """Write ``labels.txt`` into ``folder``; returns its name."""
    (folder / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    return LABELS_FILE
