"""Helpers of the training-stage tests: tiny ImageFolders, tiny pruned ViTs, the stage CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TINY_ARGS = {"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_classes": 3}
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: one thread each is fastest, and robust on 2 cores


def write_image_folder(root: Path, classes: int, train: int, val: int, size: int = 16, seed: int = 0) -> Path:
    """``root/{train,val}/c<k>/*.png``: per-class coloured blobs plus noise, so a model can learn something."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
                img[:, :, c % 3] += np.uint8(120)
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


def make_pruned(root: Path, num_classes: int = 3, seed: int = 0) -> Path:
    """A random-weight tiny DeiT saved as ``root/base.safetensors`` and its l1-pruned child ``root/pruned``."""
    import torch
    from safetensors.torch import save_file

    from snp_edge.api import prune
    from snp_edge.models import load_model
    from snp_edge.saved import save_pruned

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    base = load_model("deit_tiny_patch16_224", "random", {**TINY_ARGS, "num_classes": num_classes})
    save_file({k: v.contiguous() for k, v in base.model.state_dict().items()}, str(root / "base.safetensors"))
    base = load_model("deit_tiny_patch16_224", str(root / "base.safetensors"), base.model_args)
    result = prune(base, config={"ratios": {"embed": 0.25, "qk": 0.5, "v": 0.5, "mlp": 0.5}}, criteria="l1")
    return save_pruned(result.handle, root / "pruned", extra={"pruning": result.recipe})


def run_cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m snp_edge.train ARGV`` in a subprocess (the stage's CLI, independent of the main CLI's wiring)."""
    return subprocess.run([sys.executable, "-m", "snp_edge.train", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=ENV)
