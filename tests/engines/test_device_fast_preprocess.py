"""Issue 22 point 6: the fast preprocessing path beside the exact one: close to it on the reference photographs at
camera sizes (both resamplers, which agree with each other), BGR frames without a copy, small frames through
the exact path, the same errors on bad input, the manifest's optional ``preprocess.fast`` block checked, and
``verify`` still gating the exact path."""

import copy

import numpy as np
import pytest
from PIL import Image
from snp_edge.engines.common.errors import ManifestError, UserError
from snp_edge.engines.preprocess import (
    default_spec,
    fast_constants,
    load_image,
    preprocess,
    preprocessing_tolerance,
    validate_spec,
)

from tests.engines.device_fixtures import REPO, manifest_dict

SPEC = default_spec([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 248, 224, "bicubic")
PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.png")


def _frames():
    out = []
    for name in PHOTOS:
        photo = Image.open(REPO / "export" / "reference" / name).convert("RGB")
        out += [np.asarray(photo), np.asarray(photo.resize((640, 480))), np.asarray(photo.resize((1920, 1080)))]
    return out


def test_fast_is_close_to_exact_and_the_resamplers_agree():
    pytest.importorskip("cv2")
    frames = _frames()
    exact = preprocess(frames, SPEC)
    step = preprocessing_tolerance(SPEC)  # one uint8 step, in normalised units
    for resampler in ("pil", "opencv"):
        fast = preprocess(frames, SPEC, mode="fast", resampler=resampler)
        assert fast.shape == exact.shape and fast.dtype == np.float32
        err = np.abs(fast - exact)
        assert err.mean() < 3 * step and err.max() < 100 * step, (resampler, err.mean() / step, err.max() / step)
    pil = preprocess(frames, SPEC, mode="fast", resampler="pil")
    cv = preprocess(frames, SPEC, mode="fast", resampler="opencv")
    assert np.abs(pil - cv).mean() < step  # one method, two implementations


def test_fast_bgr_grey_small_and_bad_input():
    frame = _frames()[1]
    rgb = preprocess(frame, SPEC, mode="fast", resampler="pil")
    assert np.array_equal(preprocess(np.ascontiguousarray(frame[:, :, ::-1]), SPEC, "bgr", "fast", "pil"), rgb)
    scale, offset = fast_constants(SPEC)
    assert np.allclose(np.float32(255) * scale[:, 0, 0] - offset[:, 0, 0],
                       (1 - np.float32(SPEC["mean"])) / np.float32(SPEC["std"]), atol=1e-6)
    grey = np.asarray(Image.fromarray(frame).convert("L"))
    assert preprocess(grey, SPEC, mode="fast").shape == (1, 3, 224, 224)
    padded = dict(SPEC, resize=200)  # a resize below the crop pads: that goes the exact way
    assert np.array_equal(preprocess(frame, padded, mode="fast"), preprocess(frame, padded))
    for bad, message in [(frame.astype(np.float32), "frames must be uint8"),
                         (np.zeros((10, 10, 2), np.uint8), "a frame must be")]:
        with pytest.raises(UserError, match=message):
            preprocess(bad, SPEC, mode="fast")
    with pytest.raises(UserError, match="preprocess must be one of exact, fast"):
        preprocess(frame, SPEC, mode="quick")
    with pytest.raises(UserError, match="resampler must be opencv or pil"):
        preprocess(frame, SPEC, mode="fast", resampler="skimage")


def test_manifest_fast_block_is_optional_and_checked():
    m = manifest_dict()
    good = copy.deepcopy(m)
    validate_spec(good["preprocess"], [4, 4])
    good["preprocess"]["fast"] = {"method": "m", "agreement": {"pil/photos": {"n": 4, "top1_agreement": 1.0,
                                                                                "max_top5_prob_diff": 0.01}}}
    validate_spec(good["preprocess"], [4, 4])
    for fast, field in [({"method": "m"}, "preprocess.fast"),
                        ({"method": "m", "agreement": {"pil/photos": {"n": 4, "top1_agreement": 2,
                                                                      "max_top5_prob_diff": 0}}},
                         "preprocess.fast.agreement.pil/photos")]:
        bad = copy.deepcopy(m)
        bad["preprocess"]["fast"] = fast
        with pytest.raises(ManifestError, match="field " + field.replace(".", r"\.") + ": expected"):
            validate_spec(bad["preprocess"], [4, 4])


def test_verify_gates_the_exact_path(tmp_path):
    """The device's preprocessing check compares the exact path with the host's tensors (max abs err 0)."""
    from snp_edge.engines.verify import verify_bundle_outputs  # noqa: F401 (the gate's module)

    from tests.engines.device_fixtures import make_bundle
    from tests.engines.test_device_cli import run

    bundle = make_bundle(tmp_path / "b", with_images=True)
    res = run(["verify", bundle, "--backend", "onnxruntime"])
    assert res.returncode == 0 and "preprocessing: 2 reference photographs, max abs err 0 " in res.stdout, res.stdout
    assert load_image(str(bundle / "reference" / "images" / "chelsea.png")).shape[2] == 3
