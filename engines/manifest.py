"""The bundle manifest (``BUNDLE/manifest.json``): the one definition of its schema.

The host side (``snp-edge bundle``) writes it with :func:`hash_files` and checks it with
:func:`validate_manifest`; the device side reads it with :func:`load_manifest` and :func:`verify_files`.
Pure Python 3.6, no third-party imports.

Fields (all required unless marked optional)::

    schema_version  1
    target          "jetson-nano" | "rtx3090"
    created         ISO-8601 UTC time, e.g. "2025-01-31T12:00:00Z"
    model           {base_model: str, pruned: bool, gmacs: number > 0 (GMACs per image), params: int > 0,
                     widths: object (free-form per-layer widths), accuracy_meaningful: bool,
                     notice: str (optional)}
    onnx            {file: relative path, opset: int >= 7,
                     input: {name: str, shape: [batch, C, H, W] (batch -1 = dynamic), layout: "NCHW",
                             dtype: "float32" | "float16"},
                     normalization (optional, absent = the runtime normalises): {in_graph: bool,
                             pixel_scale: number > 0, mean: [C numbers], std: [C numbers > 0]}: the input holds
                             (rgb * pixel_scale - mean) / std for RGB in [0, 1]; in_graph false: mean/std are
                             preprocess.mean/std and pixel_scale 1; true: the model's normalisation is folded
                             into the graph (e.g. pixel_scale 255, mean 0, std 1: feed 0..255 pixels)},
                     output: {name: str, shape: [batch, num_classes]}, fp16_safe: bool (FP16 builds pin
                     fp32_nodes by default), fp32_nodes (optional): {norms: [node names], softmax: [...]}}
    preprocess      {mean: [3 numbers], std: [3 numbers > 0], resize: int px, crop: int px (= input H and W),
                     interpolation: str}
    num_classes     int > 0 (= onnx.output.shape[-1])
    golden          {inputs: relative path to float32 NCHW .npy, outputs: relative path to float32
                     (N, num_classes) .npy of ONNX Runtime FP32 logits}
    versions        {torch, timm, onnx, onnxruntime, snp_edge: str}
    files           {relative path: sha256 hex} for every file of the bundle except manifest.json;
                     must list onnx.file and both golden files

Optional fields: ``model.notice`` (str), ``notes`` (str, free text for people), ``labels`` (relative path of
``labels.txt``: one class label per line, line i = class i; listed in ``files``) with ``labels_source`` (str:
where the labels came from), ``readme`` (relative path of the bundle's README, listed in ``files``),
``golden.polygraphy_inputs`` / ``golden.polygraphy_outputs`` (relative paths: the golden data in Polygraphy's
JSON formats, for ``polygraphy run --load-inputs/--load-outputs``; listed in ``files``), and ``flavors``
(``{name: {path: folder, onnx: relative path, input: {name, shape, normalization}, output: {name, shape}}}``:
the files for other runtimes, e.g. DeepStream, each flavour's ONNX listed in ``files``).
"""

import hashlib
import math
import os
import re

from .errors import ManifestError
from .fileio import read_json
from .targets import TARGET_NAMES

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
VERSION_KEYS = ("torch", "timm", "onnx", "onnxruntime", "snp_edge")
INPUT_DTYPES = ("float32", "float16")
SKIPPED_DIRS = ("__pycache__",)  # never hashed: Python writes them when the bundle's engines/ is imported

_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _fail(field, expected, value):
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise ManifestError(f"manifest.json: field {field}: expected {expected}, got {shown}")


def _get(obj, key, field):
    if key not in obj:
        raise ManifestError(f"manifest.json: missing field {field}")
    return obj[key]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _dict(obj, key, field):
    value = _get(obj, key, field)
    if not isinstance(value, dict):
        _fail(field, "an object", value)
    return value


def _str(obj, key, field, choices=None):
    value = _get(obj, key, field)
    if not isinstance(value, str) or not value:
        _fail(field, "a non-empty string", value)
    if choices is not None and value not in choices:
        _fail(field, "one of " + ", ".join(choices), value)
    return value


def _bool(obj, key, field):
    value = _get(obj, key, field)
    if not isinstance(value, bool):
        _fail(field, "true or false", value)
    return value


def _int(obj, key, field, minimum=1):
    value = _get(obj, key, field)
    if not _is_int(value) or value < minimum:
        _fail(field, f"an integer >= {minimum}", value)
    return value


def _relpath(obj, key, field):
    value = _str(obj, key, field)
    parts = value.replace("\\", "/").split("/")
    if value.startswith("/") or ".." in parts or value == MANIFEST_NAME:
        _fail(field, "a relative path inside the bundle", value)
    return value


def _numbers(obj, key, field, count, positive=False):
    value = _get(obj, key, field)
    ok = isinstance(value, list) and len(value) == count and all(_is_number(v) for v in value)
    if not ok or (positive and min(value) <= 0):
        _fail(field, "a list of {} {}numbers".format(count, "positive " if positive else ""), value)
    return value


def _shape(obj, key, field, rank):
    """A shape: ``rank`` integers, the first (batch) -1 or positive, the others positive."""
    value = _get(obj, key, field)
    ok = isinstance(value, list) and len(value) == rank and all(_is_int(d) for d in value)
    if not ok or (value[0] < 1 and value[0] != -1) or any(d < 1 for d in value[1:]):
        _fail(field, f"{rank} integers (batch -1 or > 0, others > 0)", value)
    return value


def _validate_model(m):
    model = _dict(m, "model", "model")
    _str(model, "base_model", "model.base_model")
    _bool(model, "pruned", "model.pruned")
    gmacs = _get(model, "gmacs", "model.gmacs")
    if not _is_number(gmacs) or gmacs <= 0:
        _fail("model.gmacs", "a number > 0", gmacs)
    _int(model, "params", "model.params")
    _dict(model, "widths", "model.widths")
    _bool(model, "accuracy_meaningful", "model.accuracy_meaningful")
    if "notice" in model and not isinstance(model["notice"], str):
        _fail("model.notice", "a string", model["notice"])


def _validate_onnx(m):
    onnx = _dict(m, "onnx", "onnx")
    _relpath(onnx, "file", "onnx.file")
    _int(onnx, "opset", "onnx.opset", minimum=7)
    inp = _dict(onnx, "input", "onnx.input")
    _str(inp, "name", "onnx.input.name")
    _shape(inp, "shape", "onnx.input.shape", 4)
    _str(inp, "layout", "onnx.input.layout", ("NCHW",))
    _str(inp, "dtype", "onnx.input.dtype", INPUT_DTYPES)
    out = _dict(onnx, "output", "onnx.output")
    _str(out, "name", "onnx.output.name")
    _shape(out, "shape", "onnx.output.shape", 2)
    _bool(onnx, "fp16_safe", "onnx.fp16_safe")
    if "fp32_nodes" in onnx:
        nodes = _dict(onnx, "fp32_nodes", "onnx.fp32_nodes")
        for key in ("norms", "softmax"):
            names = nodes.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                _fail("onnx.fp32_nodes." + key, "a list of ONNX node names", names)
    return onnx


def _validate_normalization(inp, field, channels, preprocess=None):
    """``inp["normalization"]`` (optional): what the input holds; ``preprocess`` cross-checks the unfolded form."""
    if "normalization" not in inp:
        return None
    norm = _dict(inp, "normalization", field)
    in_graph = _bool(norm, "in_graph", field + ".in_graph")
    scale = _get(norm, "pixel_scale", field + ".pixel_scale")
    if not _is_number(scale) or scale <= 0:
        _fail(field + ".pixel_scale", "a number > 0", scale)
    mean = _numbers(norm, "mean", field + ".mean", channels)
    std = _numbers(norm, "std", field + ".std", channels, positive=True)
    if not in_graph and preprocess is not None:
        if scale != 1 or mean != preprocess["mean"] or std != preprocess["std"]:
            _fail(field, "pixel_scale 1 and preprocess.mean/std when in_graph is false", norm)
    return norm


def _validate_flavors(m):
    flavors = _dict(m, "flavors", "flavors")
    for name, flavor in sorted(flavors.items()):
        field = "flavors[{!r}]".format(name)
        if not isinstance(flavor, dict):
            _fail(field, "an object", flavor)
        _relpath(flavor, "path", field + ".path")
        onnx_file = _relpath(flavor, "onnx", field + ".onnx")
        if onnx_file not in m["files"]:
            raise ManifestError(f"manifest.json: field files: does not list {onnx_file}")
        inp = _dict(flavor, "input", field + ".input")
        _str(inp, "name", field + ".input.name")
        shape = _shape(inp, "shape", field + ".input.shape", 4)
        _validate_normalization(inp, field + ".input.normalization", shape[1])
        out = _dict(flavor, "output", field + ".output")
        _str(out, "name", field + ".output.name")
        _shape(out, "shape", field + ".output.shape", 2)


def _validate_preprocess(m, input_shape):
    pre = _dict(m, "preprocess", "preprocess")
    _numbers(pre, "mean", "preprocess.mean", 3)
    _numbers(pre, "std", "preprocess.std", 3, positive=True)
    _int(pre, "resize", "preprocess.resize")
    crop = _int(pre, "crop", "preprocess.crop")
    _str(pre, "interpolation", "preprocess.interpolation")
    if input_shape[2:] != [crop, crop]:
        _fail("preprocess.crop", f"the input's H and W {input_shape[2:]}", crop)


def _validate_files(m, onnx):
    golden = _dict(m, "golden", "golden")
    needed = [onnx["file"], _relpath(golden, "inputs", "golden.inputs"),
              _relpath(golden, "outputs", "golden.outputs")]
    files = _dict(m, "files", "files")
    for path, digest in sorted(files.items()):
        field = f"files[{path!r}]"
        if path == MANIFEST_NAME or path.startswith("/") or ".." in path.replace("\\", "/").split("/"):
            _fail(field, "a relative path inside the bundle other than manifest.json", path)
        if not isinstance(digest, str) or not _SHA256.match(digest):
            _fail(field, "a lowercase sha256 hex digest", digest)
    for path in needed:
        if path not in files:
            raise ManifestError(f"manifest.json: field files: does not list {path}")


def validate_manifest(m):
    """Check a manifest dict against the schema; raise :class:`ManifestError` naming the first bad field."""
    if not isinstance(m, dict):
        _fail("(top level)", "an object", m)
    version = _get(m, "schema_version", "schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(f"manifest.json: field schema_version: this engines package reads version {SCHEMA_VERSION}, "
                            f"the bundle has {version!r} (rebuild the bundle or update engines/)")
    _str(m, "target", "target", TARGET_NAMES)
    created = _str(m, "created", "created")
    if not _ISO_UTC.match(created):
        _fail("created", "an ISO-8601 UTC time like 2025-01-31T12:00:00Z", created)
    _validate_model(m)
    onnx = _validate_onnx(m)
    num_classes = _int(m, "num_classes", "num_classes")
    if onnx["output"]["shape"][1] != num_classes:
        _fail("onnx.output.shape", f"[batch, num_classes={num_classes}]", onnx["output"]["shape"])
    _validate_preprocess(m, onnx["input"]["shape"])
    _validate_normalization(onnx["input"], "onnx.input.normalization", onnx["input"]["shape"][1], m["preprocess"])
    versions = _dict(m, "versions", "versions")
    for key in VERSION_KEYS:
        _str(versions, key, "versions." + key)
    if "notes" in m and not isinstance(m["notes"], str):
        _fail("notes", "a string", m["notes"])
    _validate_files(m, onnx)
    if "labels" in m:
        labels = _relpath(m, "labels", "labels")
        if labels not in m["files"]:
            raise ManifestError(f"manifest.json: field files: does not list {labels}")
        _str(m, "labels_source", "labels_source")
    for field, obj, key in (("readme", m, "readme"), ("golden.polygraphy_inputs", m["golden"], "polygraphy_inputs"),
                            ("golden.polygraphy_outputs", m["golden"], "polygraphy_outputs")):
        if key in obj and _relpath(obj, key, field) not in m["files"]:
            raise ManifestError(f"manifest.json: field files: does not list {obj[key]}")
    if "flavors" in m:
        _validate_flavors(m)
    return m


def load_manifest(bundle_dir):
    """Read and validate ``bundle_dir/manifest.json``; returns the manifest dict."""
    path = os.path.join(bundle_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise ManifestError(f"no {MANIFEST_NAME} in {bundle_dir}: not a bundle (make one with `snp-edge bundle`)")
    doc = read_json(path, ManifestError)
    from .schema import check_finite_tree

    check_finite_tree(doc, MANIFEST_NAME, ManifestError)  # NaN / Infinity anywhere, free-form fields included
    return validate_manifest(doc)


def sha256_file(path, chunk_bytes=1 << 20):
    """The sha256 hex digest of a file, read in ``chunk_bytes`` chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(bundle_dir, manifest):
    """Check the sha256 of every file the manifest lists; returns the checked relative paths, sorted."""
    checked = []
    for rel, expected in sorted(manifest["files"].items()):
        path = os.path.join(bundle_dir, rel)
        if not os.path.isfile(path):
            raise ManifestError(f"bundle file {rel}: listed in manifest.json but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ManifestError(f"bundle file {rel}: sha256 mismatch (manifest {expected[:12]}..., file {actual[:12]}...): the bundle "
                                "was modified or copied incompletely")
        checked.append(rel)
    return checked


def hash_files(bundle_dir):
    """``{relative path: sha256}`` for every file under ``bundle_dir`` except manifest.json and
    ``__pycache__`` folders: the manifest's ``files`` field."""
    files = {}
    for root, dirs, names in os.walk(bundle_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, bundle_dir).replace(os.sep, "/")
            if rel != MANIFEST_NAME:
                files[rel] = sha256_file(path)
    return files
