"""The device's preprocessing against timm's eval transform (the host pipeline), on the reference photographs
and on synthetic images of awkward sizes; the preprocessing gate; the bundled photographs' provenance."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from snp_edge.engines.preprocess import (
    compare_preprocessing,
    crop_box,
    default_spec,
    preprocess_frame,
    resized_size,
)
from snp_edge.export.reference import REFERENCE_IMAGES, image_bytes
from timm.data import create_transform

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def timm_eval(img: Image.Image, size: int, crop_pct: float, interpolation: str, crop_mode: str = "center"):
    cfg = {"input_size": (3, size, size), "interpolation": interpolation, "mean": MEAN, "std": STD,
           "crop_pct": crop_pct, "crop_mode": crop_mode}
    return create_transform(**cfg, is_training=False)(img).numpy()


def spec_for(size: int, crop_pct: float, interpolation: str, mode: str = "shorter_side") -> dict:
    import math

    spec = default_spec(list(MEAN), list(STD), int(math.floor(size / crop_pct)), size, interpolation)
    spec["resize_mode"] = mode
    return spec


def photo(name: str) -> Image.Image:
    return Image.open(io.BytesIO(image_bytes(name))).convert("RGB")


@pytest.mark.parametrize("name", REFERENCE_IMAGES)
@pytest.mark.parametrize("size,crop_pct", [(224, 0.875), (64, 0.9), (32, 0.9)])
def test_reference_photos_match_timm_exactly(name, size, crop_pct):
    img = photo(name)
    expected = timm_eval(img, size, crop_pct, "bicubic")
    rgb = np.asarray(img)
    assert np.array_equal(preprocess_frame(rgb, spec_for(size, crop_pct, "bicubic")), expected)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # an OpenCV frame
    assert np.array_equal(preprocess_frame(bgr, spec_for(size, crop_pct, "bicubic"), color="bgr"), expected)


@pytest.mark.parametrize("hw", [(301, 199), (199, 301), (225, 224), (57, 1000), (33, 33), (20, 40)])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "nearest"])
def test_awkward_sizes_match_timm_exactly(hw, interpolation):
    """Odd sizes exercise the long-side floor and the half-to-even centre-crop offsets; tiny inputs are
    upscaled; squash resizes both sides."""
    rng = np.random.default_rng(hw[0] * 1000 + hw[1])
    rgb = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    for mode, crop_mode in (("shorter_side", "center"), ("squash", "squash")):
        expected = timm_eval(img, 32, 0.875, interpolation, crop_mode)
        got = preprocess_frame(rgb, spec_for(32, 0.875, interpolation, mode))
        assert np.array_equal(got, expected), (hw, interpolation, mode)


def test_rounding_rules_against_torchvision():
    import torchvision.transforms.functional as F

    for w, h in [(451, 300), (427, 640), (1000, 3), (3, 1000), (256, 256), (257, 255)]:
        assert resized_size(w, h, {"resize": 256, "resize_mode": "shorter_side"}) == \
            tuple(reversed(F._compute_resized_output_size((h, w), [256])))
    for w, h in [(384, 256), (256, 383), (225, 224), (301, 301)]:
        img = Image.new("RGB", (w, h))
        left, top, right, bottom = crop_box(w, h, 224)
        cropped = F.center_crop(img, [224])
        # torchvision's crop is the same box: compare the pixels of a gradient image
        grad = Image.fromarray((np.arange(w * h * 3) % 251).astype(np.uint8).reshape(h, w, 3))
        assert np.array_equal(np.asarray(F.center_crop(grad, [224])), np.asarray(grad.crop((left, top, right, bottom))))
        assert cropped.size == (224, 224)


def test_padding_when_the_image_is_smaller_than_the_crop():
    rgb = np.full((10, 30, 3), 200, dtype=np.uint8)
    spec = dict(spec_for(32, 1.0, "bicubic"), resize_mode="squash", resize=20)  # 20x20 < 32: padded
    got = preprocess_frame(rgb, spec)
    expected = create_transform(input_size=(3, 32, 32), interpolation="bicubic", mean=MEAN, std=STD,
                                crop_pct=1.0, is_training=False).transforms
    img = Image.fromarray(rgb).resize((20, 20), Image.BICUBIC)
    ref = expected[-1](expected[-2](expected[-3](img))).numpy()  # CenterCrop (pads), ToTensor, Normalize
    assert np.array_equal(got, ref)


def test_the_gate_accepts_exact_and_refuses_substitutes():
    """bilinear for bicubic, resizing without antialias, stretching instead of cropping: all refused."""
    import torchvision.transforms as T

    spec = spec_for(224, 0.875, "bicubic")
    names = list(REFERENCE_IMAGES)
    ref = np.stack([timm_eval(photo(n), 224, 0.875, "bicubic") for n in names])
    mine = np.stack([preprocess_frame(np.asarray(photo(n)), spec) for n in names])
    assert compare_preprocessing(mine, ref, spec, names)["passed"]
    one_step = mine.copy()
    one_step[0, 0, 0, 0] += 0.9 / 255 / STD[0]  # within one uint8 step: still the same pipeline
    assert compare_preprocessing(one_step, ref, spec, names)["passed"]

    def no_antialias(img):
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float()[None]
        x = T.CenterCrop(224)(T.Resize(256, T.InterpolationMode.BICUBIC, antialias=False)(x))[0]
        x = x.clamp(0, 255).round() / 255
        return ((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]).numpy()

    wrong = {
        "bilinear": [preprocess_frame(np.asarray(photo(n)), dict(spec, interpolation="bilinear")) for n in names],
        "no antialias": [no_antialias(photo(n)) for n in names],
        "stretch": [preprocess_frame(np.asarray(photo(n)), dict(spec, resize_mode="squash", resize=224))
                    for n in names],
    }
    for what, images in wrong.items():
        report = compare_preprocessing(np.stack(images), ref, spec, names)
        assert not report["passed"], what
        assert report["failures"][0].startswith("preprocessing differs from the reference"), what
    nan = ref.copy()
    nan[1, 0, 0, 0] = np.nan
    assert not compare_preprocessing(mine, nan, spec, names)["passed"]


def test_bundled_photos_are_scikit_image_samples():
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) checks the provenance")
    from pathlib import Path

    folder = Path(skimage_data.__file__).parent
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        assert image_bytes(name) == (folder / name).read_bytes(), name
    decoded = np.asarray(Image.open(folder / "rocket.jpg").convert("RGB"))
    assert np.abs(np.asarray(photo("rocket.png")).astype(int) - decoded).max() <= 1  # JPEG decoders may differ by 1
