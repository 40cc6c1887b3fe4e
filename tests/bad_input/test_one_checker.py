"""One field checker (engines/common/schema.Document) for every file the device code reads: a latency table,
a bundle manifest, a preprocessing spec and a batch profile name the field (dotted, with list indices) and
what was expected, in one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from snp_edge.engines import latency_table as lt
from snp_edge.engines.common.errors import EXIT_BAD_INPUT, UserError

from snp_edge.latency import geometry  # torch and timm: imported once, at collection
from snp_edge.vit import create_model


def _table() -> dict:
    """A valid two-point latency table for a 32-pixel DeiT-Tiny (every part 1 ms)."""
    geo = geometry(create_model("deit_tiny_patch16_224", {"img_size": 32}, device="meta"), "deit_tiny_patch16_224")
    grid = lt.default_grid(geo, 2)
    terms, _, partial = lt.measure_table(geo, grid, lambda term, widths: 1.0)
    return lt.make_table(geo, grid, terms, None, "ort", "fp32", 1, 1, "cpu", {"warmup": 0, "runs": 1}, {}, "test",
                         partial)


@pytest.mark.parametrize("axis, values, expected", [
    ("heads", [True], "field grid.heads[0]: expected an integer >= 1, got True"),
    ("mlp", [1.5, 3], "field grid.mlp[0]: expected an integer >= 1, got 1.5"),
    ("qk", [0, 8], "field grid.qk[0]: expected an integer >= 1, got 0"),
    ("embed", "64", "field grid.embed: expected a list, got '64'"),
    ("v", [], "field grid.v: expected a list of at least 1 items, got '0 items'"),
])
def test_a_bad_grid_is_refused_naming_the_field(tmp_path, axis, values, expected):
    table = _table()
    table["grid"][axis] = values
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    with pytest.raises(UserError) as err:
        lt.read_table(path)
    assert str(err.value) == f"{path}: {expected}"


@pytest.mark.slow  # a snp-edge process: torch and timm import (about 10 s on two loaded cores)
def test_a_latency_table_with_boolean_heads_is_refused_by_prune_with_status_2(tmp_path):
    """``"heads": [true]`` (a boolean is an int in Python): ``snp-edge prune --latency-table`` refuses it in one
    line, exit 2, and writes nothing."""
    table = _table()
    table["grid"]["heads"] = [True]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    out = tmp_path / "pruned"
    res = subprocess.run([sys.executable, "-m", "snp_edge", "prune", "--model", "deit_tiny_patch16_224",
                          "--model-arg", "img_size=32", "--weights", "random", "--target-speedup", "2",
                          "--latency-table", str(path), "--criterion", "l1", "--out", str(out)],
                         capture_output=True, text=True, timeout=280)
    assert res.returncode == EXIT_BAD_INPUT, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"error: {path}: field grid.heads[0]: expected an integer >= 1, "
                                                 "got True"), res.stderr
    assert not out.exists()


def _manifest() -> dict:
    from tests.engines.device_fixtures import manifest_dict

    return manifest_dict(files={"model.onnx": "0" * 64})


@pytest.mark.parametrize("where, value, expected", [
    (("model", "gmacs"), True, "field model.gmacs"),
    (("onnx", "opset"), True, "field onnx.opset: expected an integer >= 7, got True"),
    (("preprocess", "crop"), True, "field preprocess.crop: expected an integer in [1, 65536], got True"),
    (("preprocess", "divide_by"), float("inf"), "field preprocess.divide_by: expected a finite number > 0, got inf"),
    (("preprocess", "fast"), {"method": "m", "agreement": {"photos": {"n": True, "top1_agreement": 1.0,
                                                                      "max_top5_prob_diff": 0.0}}},
     "field preprocess.fast.agreement.photos: expected {n, top1_agreement, max_top5_prob_diff} in [0, 1]"),
])
def test_manifest_fields_go_through_the_one_checker(where, value, expected):
    """manifest.json and its preprocess block: a boolean is not a number, the field is named."""
    from snp_edge.engines.common.errors import ManifestError
    from snp_edge.engines.manifest import validate_manifest

    m = _manifest()
    m[where[0]][where[1]] = value
    with pytest.raises(ManifestError) as err:
        validate_manifest(m)
    assert str(err.value).startswith("manifest.json: " + expected), str(err.value)


def test_a_boolean_batch_is_not_a_profile_value():
    from snp_edge.engines.common.errors import EnginesError
    from snp_edge.engines.profiles import resolve_profile

    with pytest.raises(EnginesError, match=r"^--max-batch must be a positive integer, got True$"):
        resolve_profile(_manifest(), max_batch=True)
