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
