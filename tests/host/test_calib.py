"""Calibration inputs: folders, arrays, noise, and their failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snp_edge.calib import load_calibration
from snp_edge.errors import SnpEdgeError


@pytest.fixture(scope="module")
def data_config(tiny_handle):
    return tiny_handle.data_config


def test_image_folder(image_folder, data_config):
    cal = load_calibration(image_folder, 4, data_config, seed=0)
    assert cal.images.shape == (4, 3, 64, 64) and cal.notice is None
    again = load_calibration(image_folder, 4, data_config, seed=0)
    assert torch.equal(cal.images, again.images)
    assert not torch.equal(cal.images, load_calibration(image_folder, 4, data_config, seed=5).images)


def test_flat_folder(image_folder, data_config):
    flat = image_folder / "a"
    assert load_calibration(flat, 64, data_config).images.shape == (3, 3, 64, 64)


def test_npy(calib_npy, data_config):
    cal = load_calibration(calib_npy, 5, data_config)
    full = np.load(calib_npy)
    assert cal.images.shape == (5, 3, 64, 64)
    assert any(np.array_equal(cal.images[0].numpy(), row) for row in full)


def test_noise_has_a_notice(data_config):
    cal = load_calibration(None, 3, data_config)
    assert cal.images.shape == (3, 3, 64, 64) and "noise" in cal.notice


def test_empty_folder(tmp_path, data_config):
    with pytest.raises(SnpEdgeError, match="holds no images"):
        load_calibration(tmp_path, 4, data_config)


def test_corrupt_image_is_named(image_folder, data_config):
    (image_folder / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(SnpEdgeError, match="broken.png"):
        load_calibration(image_folder, 64, data_config)


def test_npy_wrong_shape(tmp_path, data_config):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(SnpEdgeError, match=r"expected \(N, 3, 64, 64\)"):
        load_calibration(tmp_path / "x.npy", 4, data_config)


def test_missing_source(tmp_path, data_config):
    with pytest.raises(SnpEdgeError, match="not found"):
        load_calibration(tmp_path / "nope", 4, data_config)
