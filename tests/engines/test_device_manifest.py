"""Manifest schema, file hashes and tamper detection on real bundles in tmp_path."""

import copy
import json

import pytest
from snp_edge.engines.common.errors import ManifestError
from snp_edge.engines.manifest import hash_files, load_manifest, sha256_file, validate_manifest, verify_files

from tests.engines.device_fixtures import manifest_dict


def test_valid_bundle_loads_and_verifies(bundle):
    manifest = load_manifest(str(bundle))
    assert manifest["target"] == "jetson-nano"
    assert verify_files(str(bundle), manifest) == ["golden/inputs.npy", "golden/outputs.npy", "labels.txt",
                                                   "model.onnx"]


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000  # spans several read chunks
    path.write_bytes(data)
    assert sha256_file(str(path), chunk_bytes=4096) == hashlib.sha256(data).hexdigest()


def test_hash_files_skips_manifest_and_pycache(bundle):
    (bundle / "engines" / "__pycache__").mkdir(parents=True)
    (bundle / "engines" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (bundle / "engines" / "a.py").write_text("x = 1\n")
    assert sorted(hash_files(str(bundle))) == ["engines/a.py", "golden/inputs.npy", "golden/outputs.npy",
                                               "labels.txt", "model.onnx"]


def _valid():
    return manifest_dict(files={"model.onnx": "a" * 64, "golden/inputs.npy": "b" * 64,
                                "golden/outputs.npy": "c" * 64})


def _set(m, dotted, value):
    keys = dotted.split(".")
    for k in keys[:-1]:
        m = m[k]
    if value is KeyError:
        del m[keys[-1]]
    else:
        m[keys[-1]] = value


@pytest.mark.parametrize("field,value,message", [
    ("schema_version", 3, "field schema_version: this engines package reads versions 1 and 2"),
    ("target", "jetson-xavier", "field target: expected one of jetson-nano, jetson-orin, jetson-orin-nano, "
                                "jetson-orin-jp5, rtx3090"),
    ("model.width_alignment", 0, "field model.width_alignment: expected an integer >= 1"),
    ("created", "31/01/2025", "field created"),
    ("model.pruned", "yes", "field model.pruned: expected true or false"),
    ("model.gmacs", 0, "field model.gmacs"),
    ("model.params", True, "field model.params"),
    ("model.widths", KeyError, "missing field model.widths"),
    ("onnx.opset", 6, "field onnx.opset"),
    ("onnx.input.shape", [-1, 3, 224], "field onnx.input.shape"),
    ("onnx.input.shape", [0, 3, 4, 4], "field onnx.input.shape"),
    ("onnx.input.layout", "NHWC", "field onnx.input.layout"),
    ("onnx.input.dtype", "int8", "field onnx.input.dtype"),
    ("onnx.output.shape", [-1, 1000], "field onnx.output.shape"),
    ("onnx.file", "../model.onnx", "field onnx.file: expected a relative path"),
    ("preprocess.std", [0.2, 0.0, 0.2], "field preprocess.std"),
    ("preprocess.crop", 224, "field preprocess.crop"),
    ("golden.inputs", "/abs/inputs.npy", "field golden.inputs"),
    ("versions.timm", KeyError, "missing field versions.timm"),
    ("num_classes", KeyError, "missing field num_classes"),
    ("files", {"model.onnx": "a" * 64}, "field files: does not list golden/inputs.npy"),
    ("files", {"model.onnx": "XYZ", "golden/inputs.npy": "b" * 64, "golden/outputs.npy": "c" * 64},
     "field files['model.onnx']: expected a lowercase sha256"),
    ("model.notice", 3, "field model.notice"),
])
def test_bad_field_is_named(field, value, message):
    m = copy.deepcopy(_valid())
    _set(m, field, value)
    with pytest.raises(ManifestError) as err:
        validate_manifest(m)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_optional_fields_may_be_absent():
    m = _valid()
    del m["model"]["notice"]
    assert validate_manifest(m) is m


def test_missing_and_broken_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no manifest.json"):
        load_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(str(tmp_path))


def test_tampered_file_is_named(bundle):
    manifest = load_manifest(str(bundle))
    with open(bundle / "golden" / "outputs.npy", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x7f")  # last logit -> +inf
    with pytest.raises(ManifestError, match=r"bundle file golden/outputs.npy: sha256 mismatch"):
        verify_files(str(bundle), manifest)


def test_missing_listed_file_is_named(bundle):
    manifest = load_manifest(str(bundle))
    (bundle / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="bundle file model.onnx: listed in manifest.json but missing"):
        verify_files(str(bundle), manifest)


def test_manifest_round_trips_through_json(bundle):
    text = (bundle / "manifest.json").read_text()
    assert validate_manifest(json.loads(text))["files"]["model.onnx"] == sha256_file(str(bundle / "model.onnx"))


def test_schema_1_bundles_stay_readable():
    """A bundle made before schema 2 (preprocess: mean, std, resize, crop, interpolation only) still loads;
    its preprocessing is what its host always did (timm's center-crop eval transform)."""
    from snp_edge.engines.preprocess import spec_from_manifest

    m = _valid()
    m["schema_version"] = 1
    m["preprocess"] = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize": 4, "crop": 4,
                       "interpolation": "bicubic"}
    spec = spec_from_manifest(validate_manifest(m))
    assert spec["resize_mode"] == "shorter_side" and spec["crop_mode"] == "center" and spec["divide_by"] == 255.0
    assert spec["antialias"] is True and spec["mean"] == [0.5, 0.5, 0.5]
    m["schema_version"] = 2  # the same block is incomplete for schema 2
    with pytest.raises(ManifestError, match="field preprocess.interpolation|field preprocess.color"):
        validate_manifest(m)


@pytest.mark.parametrize("field,value,message", [
    ("resize_mode", "stretch", "field preprocess.resize_mode: expected one of shorter_side, squash"),
    ("antialias", False, "field preprocess.antialias"),
    ("divide_by", float("nan"), "field preprocess.divide_by: expected a finite number > 0"),
    ("std", [0.2, 0.0, 0.2], "field preprocess.std"),
    ("mean", [0.1, float("inf"), 0.1], "field preprocess.mean"),
    ("interpolation", "area", "field preprocess.interpolation"),
])
def test_preprocess_spec_is_validated(field, value, message):
    m = _valid()
    m["preprocess"][field] = value
    with pytest.raises(ManifestError, match=message):
        validate_manifest(m)
