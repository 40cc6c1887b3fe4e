"""Resumable training checkpoints, written atomically (temporary file in the same folder, fsync, rename).

A checkpoint is a torch pickle of plain tensors and numbers: ``model``, ``optimizer``, ``scheduler``,
``ema`` (or None), ``scaler`` (or None), ``epoch`` (epochs completed), ``updates`` (optimizer steps),
``best`` (best val top-1 so far), ``identity`` (what model it belongs to) and ``config``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..engines.common.fileio import atomic_path
from ..errors import SnpEdgeError
from ..vit import torch_load

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (synced before the rename)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def model_identity(base_model: str, model_args: dict, arch: dict | None, num_classes: int) -> dict:
    """What must match for a checkpoint to be resumed into a model: base model, overrides, widths, classes."""
    return json.loads(json.dumps({"base_model": base_model, "model_args": model_args, "arch": arch,
                                  "num_classes": num_classes}))


def load_checkpoint(path: Path, identity: dict) -> dict:
    """Read a checkpoint and check it was written for the model described by ``identity``."""
    path = Path(path)
    if not path.is_file():
        raise SnpEdgeError(f"resume checkpoint not found: {path}")
    state = torch_load(path, "resume checkpoint")
    if not isinstance(state, dict) or "identity" not in state or "model" not in state:
        raise SnpEdgeError(f"{path} is not an snp-edge training checkpoint")
    theirs = state["identity"]
    if theirs != identity:
        diff = [k for k in identity if theirs.get(k) != identity[k]]
        raise SnpEdgeError(f"resume checkpoint {path} is from another model ({', '.join(diff)} differ: "
                           f"{theirs.get('base_model')} vs {identity['base_model']})")
    return state
