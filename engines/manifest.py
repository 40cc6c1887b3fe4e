"""The bundle manifest (``BUNDLE/manifest.json``): the one definition of its schema, and the integrity check
every device entry point runs first.

The host side (``snp-edge bundle``) writes it with :func:`hash_files` and checks it with
:func:`validate_manifest`; the device side reads it with :func:`open_bundle` (= :func:`load_manifest` +
:func:`verify_bundle`). Pure Python 3.6, no third-party imports.

Fields (all required unless marked optional)::

    schema_version  2 (1 is still read: its preprocess block holds only mean, std, resize, crop, interpolation)
    target          a name from the device-target table (engines/common/targets.py): "jetson-nano", "jetson-orin",
                    "jetson-orin-nano", "jetson-orin-jp5", "rtx3090"
    created         ISO-8601 UTC time, e.g. "2025-01-31T12:00:00Z"
    model           {base_model: str, pruned: bool, gmacs: number > 0 (GMACs per image), params: int > 0,
                     widths: object (free-form per-layer widths), accuracy_meaningful: bool,
                     notice: str (optional), width_alignment: int >= 1 (optional: the largest integer
                     dividing every width, e.g. 8 after --round-to 8; tensor cores want 8 in FP16)}
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
    preprocess      every step from an image to the input tensor: color, resize_mode, resize, interpolation,
                    antialias, long_side_rounding, crop_mode, crop (= input H and W), crop_offset_rounding,
                    divide_by, mean, std, reference (see engines/preprocess.py)
    num_classes     int > 0 (= onnx.output.shape[-1])
    golden          {inputs: relative path to float32 NCHW .npy, outputs: relative path to float32
                     (N, num_classes) .npy of ONNX Runtime FP32 logits,
                     images (optional): [relative paths of the photographs whose preprocessed tensors are the
                     first len(images) rows of inputs],
                     top_k (optional): {k: int, class_ids: N lists of k ints, probs: N lists of k numbers in
                     [0, 1] (softmax of the host's PyTorch FP32 logits), source: str}}
    versions        {torch, timm, onnx, onnxruntime, snp_edge: str}
    files           {relative path: sha256 hex} for every file of the bundle except manifest.json;
                     must list onnx.file, both golden arrays, every golden image and labels

Optional fields: ``model.notice`` (str), ``notes`` (str, free text for people), ``labels`` (relative path of
``labels.txt``: one class label per line, line i = class i; listed in ``files``) with ``labels_source`` (str:
where the labels came from), ``readme`` (relative path of the bundle's README, listed in ``files``),
``golden.polygraphy_inputs`` / ``golden.polygraphy_outputs`` (relative paths: the golden data in Polygraphy's
JSON formats, for ``polygraphy run --load-inputs/--load-outputs``; listed in ``files``), and ``flavors``
(``{name: {path: folder, onnx: relative path, input: {name, shape, normalization}, output: {name, shape}}}``:
the files for other runtimes, e.g. DeepStream, each flavour's ONNX listed in ``files``), and ``quantization``
(INT8 bundles: see :mod:`engines.quantization`).

``writable`` (optional; absent = :data:`engines._bootstrap.DEFAULT_WRITABLE`): ``{folder: [file-name
patterns]}``, "." the bundle root: the places the device side and the flavours' runtimes may add files to,
and the names they may add (fnmatch patterns without "/", never code: ``*.py``, ``*.pyc``, ``*.so``, ...).
``snp-edge bundle`` declares ``trt-cache`` (engines, sidecars, timing caches), "." (result files ``*.json``,
``*.log``) and each flavour's own (DeepStream's and jetson-inference's engines beside their ONNX, Triton's
TensorRT execution-provider cache).

Integrity (:func:`verify_bundle`, the same code as the bootstrap every device entry point runs first:
``engines/_bootstrap.py``): every listed file exists as a regular file inside the bundle (no symbolic link
anywhere on its path) with the listed sha256, and nothing unlisted can be picked up as code or data: an
unlisted file must sit in a declared writable place and match one of its patterns; no ``__pycache__`` or
byte code anywhere; symbolic links anywhere are refused. The hashes guard against accidental change (an
incomplete copy, an edit, a dropped file) and added files, not against someone who can rewrite
manifest.json, the launcher or the bootstrap too (docs/device-workflow.md, "Integrity").
"""

import math
import os
import re

from . import _bootstrap
from ._bootstrap import CACHE_DIR_NAME, MANIFEST_NAME, RESULT_PATTERNS, sha256_file  # noqa: F401 (re-exported)
from .common.errors import ManifestError
from .common.fileio import read_json
from .common.schema import Document, is_int, is_number
from .common.targets import TARGET_NAMES
from .preprocess import validate_spec
from .quantization import validate_quantization

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
RESULT_SUFFIXES = (".json", ".log")  # unlisted result files allowed in the bundle root (RESULT_PATTERNS)
VERSION_KEYS = ("torch", "timm", "onnx", "onnxruntime", "snp_edge")
INPUT_DTYPES = ("float32", "float16")
SKIPPED_DIRS = ("__pycache__",)  # never hashed: Python writes them when the bundle's engines/ is imported

_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


_DOC = Document("manifest.json", ManifestError)  # the one field checker (engines/common/schema.py)
_fail, _get, _dict, _bool = _DOC.fail, _DOC.get, _DOC.dict, _DOC.bool
_is_int, _is_number = is_int, is_number


def _str(obj, key, field, choices=None):
    return _DOC.str(obj, key, field, choices)


def _int(obj, key, field, minimum=1):
    return _DOC.int(obj, key, field, minimum=minimum)


def _relpath(obj, key, field):
    value = _str(obj, key, field)
    parts = value.replace("\\", "/").split("/")
    if value.startswith("/") or ".." in parts or value == MANIFEST_NAME:
        _fail(field, "a relative path inside the bundle", value)
    return value


def _numbers(obj, key, field, count, positive=False):
    value = _get(obj, key, field)
    ok = isinstance(value, list) and len(value) == count and all(
        _is_number(v) and math.isfinite(v) for v in value)
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
    if "width_alignment" in model:
        _int(model, "width_alignment", "model.width_alignment")


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


def _validate_top_k(golden, num_classes):
    top = _dict(golden, "top_k", "golden.top_k")
    k = _int(top, "k", "golden.top_k.k")
    _str(top, "source", "golden.top_k.source")
    ids, probs = _get(top, "class_ids", "golden.top_k.class_ids"), _get(top, "probs", "golden.top_k.probs")
    if not isinstance(ids, list) or not ids or not all(
            isinstance(row, list) and len(row) == k and all(_is_int(c) and 0 <= c < num_classes for c in row)
            for row in ids):
        _fail("golden.top_k.class_ids", f"lists of {k} class ids in [0, {num_classes})", ids)
    if not isinstance(probs, list) or len(probs) != len(ids) or not all(
            isinstance(row, list) and len(row) == k and all(
                _is_number(p) and math.isfinite(p) and 0 <= p <= 1 for p in row) for row in probs):
        _fail("golden.top_k.probs", f"{len(ids)} lists of {k} finite probabilities in [0, 1]", probs)


def _validate_golden(m, num_classes):
    golden = _dict(m, "golden", "golden")
    paths = [_relpath(golden, "inputs", "golden.inputs"), _relpath(golden, "outputs", "golden.outputs")]
    if "images" in golden:
        images = _get(golden, "images", "golden.images")
        if not isinstance(images, list) or not images:
            _fail("golden.images", "a non-empty list of relative paths", images)
        paths += [_relpath({"image": p}, "image", "golden.images") for p in images]
    if "top_k" in golden:
        _validate_top_k(golden, num_classes)
        if len(golden.get("images", [])) > len(golden["top_k"]["class_ids"]):
            _fail("golden.top_k.class_ids", "a row for every golden image", golden["top_k"]["class_ids"])
    return paths


def _validate_files(m, needed):
    files = _bootstrap.check_files_field(m, ManifestError)
    for path in needed:
        if path not in files:
            raise ManifestError(f"manifest.json: field files: does not list {path}")


def validate_manifest(m):
    """Check a manifest dict against the schema; raise :class:`ManifestError` naming the first bad field."""
    if not isinstance(m, dict):
        _fail("(top level)", "an object", m)
    version = _get(m, "schema_version", "schema_version")
    if version not in READABLE_VERSIONS:
        raise ManifestError("manifest.json: field schema_version: this engines package reads versions {}, the "
                            "bundle has {!r} (rebuild the bundle or update engines/)".format(
                                " and ".join(map(str, READABLE_VERSIONS)), version))
    _str(m, "target", "target", TARGET_NAMES)
    created = _str(m, "created", "created")
    if not _ISO_UTC.match(created):
        _fail("created", "an ISO-8601 UTC time like 2025-01-31T12:00:00Z", created)
    _validate_model(m)
    onnx = _validate_onnx(m)
    num_classes = _int(m, "num_classes", "num_classes")
    if onnx["output"]["shape"][1] != num_classes:
        _fail("onnx.output.shape", f"[batch, num_classes={num_classes}]", onnx["output"]["shape"])
    validate_spec(_dict(m, "preprocess", "preprocess"), onnx["input"]["shape"][2:], version)
    _validate_normalization(onnx["input"], "onnx.input.normalization", onnx["input"]["shape"][1], m["preprocess"])
    golden_paths = _validate_golden(m, num_classes)
    golden_paths += validate_quantization(m, _relpath)  # INT8 bundles (engines/quantization.py)
    versions = _dict(m, "versions", "versions")
    for key in VERSION_KEYS:
        _str(versions, key, "versions." + key)
    if "notes" in m and not isinstance(m["notes"], str):
        _fail("notes", "a string", m["notes"])
    _validate_files(m, [onnx["file"]] + golden_paths)
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
    _bootstrap.writable_places(m, ManifestError)
    return m


def load_manifest(bundle_dir):
    """Read and validate ``bundle_dir/manifest.json``; returns the manifest dict."""
    path = os.path.join(bundle_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise ManifestError(f"no {MANIFEST_NAME} in {bundle_dir}: not a bundle (make one with `snp-edge bundle`)")
    doc = read_json(path, ManifestError)
    from .common.schema import check_finite_tree

    check_finite_tree(doc, MANIFEST_NAME, ManifestError)  # NaN / Infinity anywhere, free-form fields included
    return validate_manifest(doc)


def verify_files(bundle_dir, manifest):
    """Check every file the manifest lists (a regular file inside the bundle, reached through no symbolic
    link, with the listed sha256); returns the checked relative paths, sorted."""
    return _bootstrap.verify_files(bundle_dir, manifest["files"], ManifestError)


def unlisted_entries(bundle_dir, manifest):
    """Bundle paths that are neither listed in the manifest nor allowed in a declared writable place, and every
    symbolic link: ``[(relative path, why)]``, sorted by path."""
    return _bootstrap.unlisted_entries(bundle_dir, manifest["files"], _bootstrap.writable_places(manifest,
                                                                                                 ManifestError))


def writable_places(manifest):
    """``{folder ("" = root): patterns}`` the manifest declares (or the defaults)."""
    return _bootstrap.writable_places(manifest, ManifestError)


def verify_bundle(bundle_dir, manifest):
    """The integrity check of every device entry point: :func:`verify_files` and no unlisted or linked entry
    (:func:`unlisted_entries`). Raises :class:`ManifestError` naming the first problem. The hashing is skipped
    once right after the bootstrap verified this bundle with the same manifest.json in this process."""
    path = os.path.join(bundle_dir, MANIFEST_NAME)
    digest = sha256_file(path) if os.path.isfile(path) and not os.path.islink(path) else None
    if digest is None or not _bootstrap.take_verified(bundle_dir, digest):
        verify_files(bundle_dir, manifest)
    _bootstrap.refuse_unlisted(bundle_dir, manifest["files"], writable_places(manifest), ManifestError)
    return manifest


def open_bundle(bundle_dir):
    """Load, validate and integrity-check a bundle: what every device command does first."""
    if not os.path.isdir(bundle_dir):
        raise ManifestError(f"bundle folder not found: {bundle_dir}")
    return verify_bundle(bundle_dir, load_manifest(bundle_dir))


def hash_files(bundle_dir):
    """``{relative path: sha256}`` for every file under ``bundle_dir`` except manifest.json and
    ``__pycache__`` folders (a bundle ships no byte code): the manifest's ``files`` field."""
    files = {}
    for root, dirs, names in os.walk(bundle_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, bundle_dir).replace(os.sep, "/")
            if os.path.islink(path):
                raise ManifestError(f"{rel} is a symbolic link: a bundle holds real files only")
            if rel != MANIFEST_NAME:
                files[rel] = sha256_file(path)
    return files
