"""Shared fixtures: small real timm ViTs (random weights, fixed seeds) and calibration data on disk."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

from tests.fast_loop import pytest_runtest_call, pytest_runtest_makereport  # noqa: F401 (the fast loop's guard)

# the device engine key (engines/sidecar.py) of this test session, never the user's ~/.config one; subprocesses
# inherit it
os.environ.setdefault("SNP_EDGE_ENGINE_KEY", os.path.join(tempfile.mkdtemp(prefix="snp-edge-key-"), "engine-key"))

SMALL = {"img_size": 64}  # DeiT geometry at 64 px: 16 patches + class token, fast on 2 cores


@pytest.fixture(scope="session")
def tiny_handle():
    """deit_tiny_patch16_224 at 64 px, random weights (seed 0)."""
    from snp_edge.models import load_model

    return load_model("deit_tiny_patch16_224", "random", SMALL)


@pytest.fixture(scope="session")
def tiny_inputs(tiny_handle):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 64, 64, generator=gen)


@pytest.fixture
def calib_npy(tmp_path):
    """(12, 3, 64, 64) float32 calibration array, preprocessed NCHW."""
    path = tmp_path / "calib.npy"
    np.save(path, np.random.default_rng(0).standard_normal((12, 3, 64, 64)).astype(np.float32))
    return path


@pytest.fixture
def image_folder(tmp_path):
    """An ImageFolder-layout folder of 6 small RGB PNGs in two classes."""
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (80, 90, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root

