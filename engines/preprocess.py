"""Image preprocessing on the device, step for step what timm's eval transform does on the host.

The manifest's ``preprocess`` block spells every step out (schema 2; a schema-1 bundle gets the values its
host always used, see :func:`spec_from_manifest`)::

    color                "RGB": channel order of the model input
    resize_mode          "shorter_side": the shorter side becomes ``resize`` px, the longer side
                         floor(resize * long / short) px (torchvision ``Resize(int)``);
                         "squash": both sides become ``resize`` px (timm crop_mode "squash")
    resize               int px
    interpolation        PIL filter: "bicubic" | "bilinear" | "nearest" | "lanczos" | "box" | "hamming"
    antialias            true: PIL's resize, whose filter widens with the downscale factor (what
                         torchvision does for PIL images; tensors resized without antialias differ)
    long_side_rounding   "floor"
    crop_mode            "center"
    crop                 int px, square crop = the input's H and W
    crop_offset_rounding "half-even": top = round((H - crop) / 2) with Python's round (ties to even),
                         likewise left (torchvision ``CenterCrop``); a side smaller than the crop is
                         zero-padded first, (crop - side) // 2 before and the rest after
    divide_by            255.0: float32(pixel) / divide_by (``ToTensor``)
    mean, std            per channel, float32: (x - mean) / std (``Normalize``)
    reference            free text naming the host pipeline the golden tensors came from

``divide_by``, ``mean`` and ``std`` there are the model's own normalisation. Where the manifest records the
ONNX's input form (``onnx.input.normalization``, e.g. with the normalisation folded into the graph), that form
replaces them for the tensor actually fed: ``(pixel / 255 * pixel_scale - mean) / std`` with the form's mean
and std (:func:`spec_from_manifest` does this).

Frames are numpy uint8 arrays, HWC (H, W, 3) RGB or BGR (``color="bgr"``, what OpenCV gives), (H, W)
grey or (H, W, 4) RGBA (alpha dropped, as PIL's ``convert("RGB")``), any size; or a batch (N, H, W, C)
or a list of frames of different sizes. The output is float32 NCHW. Needs numpy and Pillow (the resize is
PIL's own, the same code as on the host).

Two modes (``mode=``, ``--preprocess``): "exact" (default; what ``verify`` gates) does the steps above
literally; "fast" resizes only the region of the frame that survives the centre crop, straight to crop x crop
px, with PIL's antialiased bilinear filter (a BGR frame is resized as it is, the channel order is fixed when
it is normalised), and normalises through a 256-entry lookup table per channel. It is not bit-exact: the
bundle's manifest records its agreement with the exact path (``preprocess.fast``: top-1 agreement and the
largest top-5 probability difference on the reference photographs and on camera frames), as does its README.
"""

import math
import os
import stat

from .common.errors import EnginesError, MissingPrerequisite, UserError, first_line

SPEC_VERSION = 2
INTERPOLATIONS = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}  # PIL ids
RESIZE_MODES = ("shorter_side", "squash")
CROP_MODES = ("center",)
COLORS = ("rgb", "bgr")
MODES = ("exact", "fast")
FAST_METHOD = ("the crop's region only: k x k block average (k = the downscale factor, rounded), then bilinear to "
               "the crop size (OpenCV INTER_AREA + warpAffine where cv2 imports, else PIL reduce + bilinear); "
               "normalised in float32 without the exact path's intermediate steps")
REFERENCE_TEXT = ("timm.data.create_transform(is_training=False) on a PIL RGB image: torchvision Resize "
                  "(PIL, antialiased), CenterCrop, ToTensor, Normalize")
# Limit on decoded image size: PIL's own decompression-bomb limit, refused rather than warned about
MAX_RESIZE_RATIO = 8  # preprocess.resize / crop at most (timm's crop_pct >= 0.125)
MAX_IMAGE_PIXELS = 89478485


def default_spec(mean, std, resize, crop, interpolation):
    """A complete schema-2 spec from the five values a schema-1 manifest (and timm's data config) holds."""
    return {"color": "RGB", "resize_mode": "shorter_side", "resize": resize, "interpolation": interpolation,
            "antialias": True, "long_side_rounding": "floor", "crop_mode": "center", "crop": crop,
            "crop_offset_rounding": "half-even", "divide_by": 255.0, "mean": list(mean), "std": list(std),
            "reference": REFERENCE_TEXT}


def _doc():
    """The one field checker (engines/common/schema.py) for the manifest's ``preprocess`` block."""
    from .common.errors import ManifestError
    from .common.schema import Document

    return Document("manifest.json", ManifestError)


def _bad(field, expected, value):
    _doc().fail("preprocess." + field, expected, value)


def _number_list(pre, key, positive):
    from .common.schema import is_number

    value = pre.get(key)
    ok = isinstance(value, list) and len(value) == 3 and all(is_number(v) for v in value)
    if not ok or (positive and min(value) <= 0):
        _bad(key, "a list of 3 finite {}numbers".format("positive " if positive else ""), value)


def validate_spec(pre, input_hw, schema_version=SPEC_VERSION):
    """Check a manifest's ``preprocess`` block; schema 1 holds only mean, std, resize, crop, interpolation."""
    doc = _doc()

    def choice(key, choices):
        if pre.get(key) not in choices:
            _bad(key, "one of " + ", ".join(str(c) for c in choices), pre.get(key))

    def positive_int(key):
        doc.int_value(pre.get(key), "preprocess." + key, 1, 65536)

    _number_list(pre, "mean", positive=False)
    _number_list(pre, "std", positive=True)
    positive_int("resize")
    positive_int("crop")
    if pre["resize"] > MAX_RESIZE_RATIO * pre["crop"]:  # timm's crop_pct >= 1/8; 65536 px would exhaust memory
        _bad("resize", "at most {} x crop ({})".format(MAX_RESIZE_RATIO, MAX_RESIZE_RATIO * pre["crop"]), pre["resize"])
    if list(input_hw) != [pre["crop"], pre["crop"]]:
        _bad("crop", "the input's H and W {}".format(list(input_hw)), pre["crop"])
    if schema_version < 2:
        if not isinstance(pre.get("interpolation"), str):
            _bad("interpolation", "a string", pre.get("interpolation"))
        return pre
    choice("interpolation", sorted(INTERPOLATIONS))
    choice("color", ("RGB",))
    choice("resize_mode", RESIZE_MODES)
    choice("antialias", (True,))
    choice("long_side_rounding", ("floor",))
    choice("crop_mode", CROP_MODES)
    choice("crop_offset_rounding", ("half-even",))
    doc.number_value(pre.get("divide_by"), "preprocess.divide_by", 0, exclusive_minimum=True)
    if not isinstance(pre.get("reference"), str):
        _bad("reference", "a string", pre.get("reference"))
    if "fast" in pre:
        _validate_fast(pre["fast"])
    return pre


def _validate_fast(fast):
    """``preprocess.fast`` (optional): ``{method, agreement: {images, frames: {n, top1_agreement,
    max_top5_prob_diff}}}``, the fast path's agreement with the exact one measured when bundling."""
    if not isinstance(fast, dict) or not isinstance(fast.get("method"), str) \
            or not isinstance(fast.get("agreement"), dict):
        _bad("fast", "an object with method and agreement", fast)
    from .common.schema import is_int, is_number

    for key, value in fast["agreement"].items():
        ok = isinstance(value, dict) and is_int(value.get("n")) and all(
            is_number(value.get(k)) and 0 <= value.get(k) <= 1 for k in ("top1_agreement", "max_top5_prob_diff"))
        if not ok:
            _bad("fast.agreement." + str(key), "{n, top1_agreement, max_top5_prob_diff} in [0, 1]", value)


def spec_from_manifest(manifest):
    """The complete preprocessing spec for the ONNX input of a validated manifest (schema 1: the values its
    host always used; an input form ``onnx.input.normalization`` replaces divide_by, mean and std)."""
    pre = manifest["preprocess"]
    if manifest["schema_version"] >= 2:
        spec = dict(pre)
    else:
        if pre["interpolation"] not in INTERPOLATIONS:
            raise EnginesError("manifest.json: preprocess.interpolation {!r} is not a PIL filter".format(
                pre["interpolation"]))
        spec = default_spec(pre["mean"], pre["std"], pre["resize"], pre["crop"], pre["interpolation"])
    form = manifest["onnx"]["input"].get("normalization")
    if form is not None:
        spec.update(divide_by=255.0 / form["pixel_scale"], mean=list(form["mean"]), std=list(form["std"]))
    return spec


# ---- geometry (pure Python: the rounding rules, tested against torchvision) ------------------------------------

def resized_size(width, height, spec):
    """(width, height) after the resize step; refuses a size larger than :data:`MAX_IMAGE_PIXELS` (2) or than
    this machine's free memory (3) before anything is allocated."""
    size = spec["resize"]
    if spec["resize_mode"] == "squash":
        new = size, size
    elif width <= height:
        new = size, int(size * height / width)
    else:
        new = int(size * width / height), size
    if new[0] * new[1] > MAX_IMAGE_PIXELS:
        raise UserError("preprocess.resize {} makes a {}x{} px frame {}x{} px, more than {} px".format(
            size, width, height, new[0], new[1], MAX_IMAGE_PIXELS))
    from .memory import check_memory

    check_memory(new[0] * new[1] * 3 * 2, "resizing a {}x{} px frame to {}x{} px".format(width, height, *new))
    return new


def crop_box(width, height, crop):
    """``(left, top, right, bottom)`` of the centre crop in an image of ``width`` x ``height`` px, after
    zero-padding a side smaller than ``crop`` (negative left/top = padding)."""
    pad_w = max(crop - width, 0)
    pad_h = max(crop - height, 0)
    width += pad_w
    height += pad_h
    top = int(round((height - crop) / 2.0)) - pad_h // 2
    left = int(round((width - crop) / 2.0)) - pad_w // 2
    return left, top, left + crop, top + crop


# ---- pixels ---------------------------------------------------------------------------------------------------

def import_pil():
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingPrerequisite("Pillow does not import ({}): preprocessing needs it (python3 -m pip install "
                                  "--user Pillow, or apt-get install python3-pil)".format(first_line(exc))) from None
    return Image


def as_rgb(frame, color="rgb"):
    """A frame as a contiguous (H, W, 3) uint8 RGB array (see the module docstring for what is accepted)."""
    import numpy as np

    if color not in COLORS:
        raise UserError("color must be 'rgb' or 'bgr', got {!r}".format(color))
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise UserError("frames must be uint8 (0..255), got {}".format(frame.dtype))
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise UserError("a frame must be (H, W, 3) RGB/BGR, (H, W, 4) RGBA or (H, W) grey, got shape {}".format(
            frame.shape))
    if frame.shape[0] * frame.shape[1] > MAX_IMAGE_PIXELS:
        raise UserError("a frame of {}x{} px is larger than {} px".format(frame.shape[1], frame.shape[0],
                                                                      MAX_IMAGE_PIXELS))
    frame = frame[:, :, :3]
    if color == "bgr":
        frame = frame[:, :, ::-1]
    return np.ascontiguousarray(frame)


def preprocess_frame(frame, spec, color="rgb"):
    """One frame -> the model input (3, crop, crop) float32, exactly as the spec says."""
    import numpy as np

    Image = import_pil()
    rgb = as_rgb(frame, color)
    height, width = rgb.shape[:2]
    img = Image.fromarray(rgb, "RGB")
    new_w, new_h = resized_size(width, height, spec)
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), INTERPOLATIONS[spec["interpolation"]])
    # PIL's crop pads with zeros outside the image, as torchvision's pad-then-crop does
    img = img.crop(crop_box(new_w, new_h, spec["crop"]))
    x = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(spec["divide_by"])
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1))


def fast_constants(spec):
    """``(scale, offset)``, each (3, 1, 1) float32: the fast path's normalisation ``v * scale - offset`` of a
    uint8 value v (= ``(v / divide_by - mean) / std`` up to float32 rounding)."""
    import numpy as np

    std = np.asarray(spec["std"], dtype=np.float64)
    scale = 1.0 / (float(spec["divide_by"]) * std)
    offset = np.asarray(spec["mean"], dtype=np.float64) / std
    return scale.astype(np.float32).reshape(3, 1, 1), offset.astype(np.float32).reshape(3, 1, 1)


_CV2 = []


def opencv():
    """The cv2 module, or None where OpenCV does not import (looked up once)."""
    if not _CV2:
        try:
            import cv2
        except ImportError:
            cv2 = None
        _CV2.append(cv2)
    return _CV2[0]


def _crop_region(width, height, spec):
    """The crop's box ``(left, top, right, bottom)`` in the frame's own pixels (floats) and the downscale
    factor, or None where the crop pads (a side smaller than the crop after the resize)."""
    new_w, new_h = resized_size(width, height, spec)
    left, top, right, bottom = crop_box(new_w, new_h, spec["crop"])
    if left < 0 or top < 0:
        return None
    sx, sy = width / float(new_w), height / float(new_h)
    return (left * sx, top * sy, right * sx, bottom * sy), min(sx, sy)


def fast_frame(frame, spec, color="rgb", constants=None, resampler=None):
    """One frame -> (3, crop, crop) float32 by the fast path: the crop's region only (plus a 2 px margin),
    averaged over k x k blocks (k = the downscale factor, rounded), then bilinear to crop x crop px; OpenCV
    (``resampler`` "opencv", the default where cv2 imports) or PIL ("pil": ``Image.reduce`` and an
    antialiased bilinear resize, the same steps). A frame smaller than the crop goes the exact way."""
    import numpy as np

    if color not in COLORS:
        raise UserError("color must be 'rgb' or 'bgr', got {!r}".format(color))
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] * arr.shape[1] > MAX_IMAGE_PIXELS:
        arr, color = as_rgb(arr, color), "rgb"  # grey, RGBA, and the errors of bad input
    height, width = arr.shape[:2]
    region = _crop_region(width, height, spec)
    if region is None:
        return preprocess_frame(arr, spec, color)
    box, factor = region
    crop = spec["crop"]
    k = max(1, int(round(factor)))
    left, top = max(0, int(box[0]) - 2) // k * k, max(0, int(box[1]) - 2) // k * k
    right, bottom = min(width, int(math.ceil(box[2])) + 2), min(height, int(math.ceil(box[3])) + 2)
    right, bottom = left + (right - left) // k * k, top + (bottom - top) // k * k
    sub = arr[top:bottom, left:right]
    x0, y0 = (box[0] - left) / k, (box[1] - top) / k
    x1, y1 = min((box[2] - left) / k, (right - left) // k), min((box[3] - top) / k, (bottom - top) // k)
    cv2 = opencv() if resampler in (None, "opencv") else None
    if resampler == "opencv" and cv2 is None:
        raise MissingPrerequisite("OpenCV (cv2) does not import: the opencv resampler needs it")
    if resampler not in (None, "opencv", "pil"):
        raise UserError("resampler must be opencv or pil, got {!r}".format(resampler))
    if cv2 is not None:
        if k > 1:
            sub = cv2.resize(sub, (sub.shape[1] // k, sub.shape[0] // k), interpolation=cv2.INTER_AREA)
        sx, sy = (x1 - x0) / crop, (y1 - y0) / crop  # dst pixel centre x + 0.5 <- source x0 + (x + 0.5) * sx
        m = np.array([[1.0 / sx, 0.0, (0.5 - x0) / sx - 0.5], [0.0, 1.0 / sy, (0.5 - y0) / sy - 0.5]])
        out = cv2.warpAffine(np.ascontiguousarray(sub), m, (crop, crop), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    else:
        Image = import_pil()
        img = Image.fromarray(np.ascontiguousarray(sub), "RGB")
        if k > 1:
            img = img.reduce(k)
        out = np.asarray(img.resize((crop, crop), Image.BILINEAR, box=(x0, y0, x1, y1)))
    scale, offset = fast_constants(spec) if constants is None else constants
    order = (2, 1, 0) if color == "bgr" else (0, 1, 2)
    x = np.empty((3, crop, crop), dtype=np.float32)
    for c in range(3):
        x[c] = out[:, :, order[c]]
    x *= scale
    x -= offset
    return x


def frames_list(frames):
    """``frames`` as a list of frames: a list/tuple of frames, a (N, H, W, C) batch, or one frame."""
    import numpy as np

    if isinstance(frames, (list, tuple)):
        return list(frames)
    arr = np.asarray(frames)
    if arr.ndim == 4:
        return list(arr)
    return [arr]


def preprocess(frames, spec, color="rgb", mode="exact", resampler=None):
    """Frames (see :func:`frames_list`) -> (N, 3, crop, crop) float32, by the exact or the fast path."""
    import numpy as np

    if mode not in MODES:
        raise UserError("preprocess must be one of {}, got {!r}".format(", ".join(MODES), mode))
    items = frames_list(frames)
    if not items:
        raise UserError("no frames given")
    if mode == "fast":
        constants = fast_constants(spec)
        return np.stack([fast_frame(f, spec, color, constants, resampler) for f in items])
    return np.stack([preprocess_frame(f, spec, color) for f in items])


def load_image(path):
    """An image file as a (H, W, 3) uint8 RGB array: decoded by PIL and converted to RGB, as timm's loader
    does (no EXIF rotation). One-line :class:`UserError` for a missing, corrupt or oversized file."""
    import warnings

    import numpy as np

    Image = import_pil()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block the read forever
            raise UserError("{}: not a regular file (a FIFO, device or folder); give an image file".format(path))
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
                    raise UserError("{}: {}x{} px is larger than {} px (decompression bomb?)".format(
                        path, img.size[0], img.size[1], MAX_IMAGE_PIXELS))
                return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except UserError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise UserError("cannot read image {}: {}".format(path, first_line(exc))) from None


# ---- the preprocessing gate -------------------------------------------------------------------------------------

def preprocessing_tolerance(spec, levels=1.0):
    """Max abs difference allowed between two implementations of the spec, in normalised units: ``levels``
    uint8 steps after the resize (PIL versions may round one step apart), i.e. levels / divide_by / min(std).
    Other resize filters or rounding rules differ by far more (bilinear instead of antialiased bicubic: about
    6 steps; no antialias: tens; stretching instead of cropping: hundreds)."""
    return levels / float(spec["divide_by"]) / min(spec["std"])


def compare_preprocessing(actual, expected, spec, names=None):
    """Compare this device's preprocessed images (N, 3, H, W) with the reference tensors; returns
    ``{n, max_abs_err, mean_abs_err, atol, finite, passed, failures, per_image: [{image, max_abs_err}]}``."""
    import numpy as np

    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise EnginesError("preprocessed images {} do not match the reference tensors {}".format(
            actual.shape, expected.shape))
    names = names or ["#{}".format(i) for i in range(len(actual))]
    finite = bool(np.isfinite(expected).all() and np.isfinite(actual).all())
    diff = np.abs(actual - expected) if finite else None
    atol = preprocessing_tolerance(spec)
    per_image = [{"image": names[i], "max_abs_err": float(diff[i].max()) if finite else float("inf")}
                 for i in range(len(actual))]
    failures = []
    if not finite:
        failures.append("reference tensors or preprocessed images contain NaN or Inf")
    else:
        bad = [p for p in per_image if p["max_abs_err"] > atol]
        if bad:
            failures.append("preprocessing differs from the reference: {} (limit {:.3g}, one uint8 step)".format(
                ", ".join("{} max abs err {:.3g}".format(p["image"], p["max_abs_err"]) for p in bad[:4]), atol))
    return {"n": int(len(actual)), "max_abs_err": max(p["max_abs_err"] for p in per_image) if per_image else 0.0,
            "mean_abs_err": float(diff.mean()) if finite and diff.size else None, "atol": atol, "finite": finite,
            "per_image": per_image, "failures": failures, "passed": not failures}
