"""The accuracy-retention experiment end to end in --quick mode: real MNIST digits, every criterion, one table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from snp_edge.criteria import CRITERIA
from tests.train.train_testutils import ENV, REPO


@pytest.mark.slow
def test_quick_experiment_produces_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "acc"
    res = subprocess.run([sys.executable, "-m", "experiments.accuracy_retention", "--out", str(out), "--quick"],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads((out / "results.json").read_text())
    rows = result["rows"]
    from experiments.accuracy_retention import COMBOS, main

    names = [*CRITERIA, *COMBOS]
    assert {r["criterion"] for r in rows} == set(names) and {r["target"] for r in rows} == {"50%", "30%"}
    for target in ("50%", "30%"):
        sel = [r for r in rows if r["target"] == target]
        assert len({json.dumps(r["widths"], sort_keys=True) for r in sel}) == 1  # identical widths for all
        assert len({round(r["gmacs"], 9) for r in sel}) == 1
    frac = {r["target"]: r["gmacs"] / r["base_gmacs"] for r in rows}
    assert 0.45 <= frac["50%"] <= 0.5 and 0.27 <= frac["30%"] <= 0.3
    for r in rows:
        assert 0 <= r["top1_before"] <= 100 and 0 <= r["top1_after"] <= 100
        assert r["attention_kl"] >= 0 and -1 <= r["attention_cosine"] <= 1 + 1e-6
    table = (out / "table.md").read_text()
    assert table.count("\n| 50% |") == len(names) and "top-1 after KD FT" in table
    assert (out / "retention.png").read_bytes()[:4] == b"\x89PNG"
    # a second run refuses to overwrite the results

    assert main(["--out", str(out), "--quick"]) == 1
    assert "--force" in capsys.readouterr().err
