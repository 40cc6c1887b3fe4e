"""Fixtures of the training stage: a tiny ImageFolder on disk and a tiny pruned ViT that remembers its parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.train_testutils import make_pruned, write_image_folder


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one torch thread is faster, and robust on shared cores (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """3 classes; 8 train and 4 val images per class (24 / 12), 16 x 16 RGB."""
    return write_image_folder(tmp_path_factory.mktemp("data") / "images", 3, 8, 4)


@pytest.fixture(scope="session")
def tiny_pruned(tmp_path_factory) -> Path:
    return make_pruned(tmp_path_factory.mktemp("model"))
