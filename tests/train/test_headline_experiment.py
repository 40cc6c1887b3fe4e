"""The miniature-headline experiment end to end in --quick mode: real MNIST digits, wide and narrow ViTs,
SNP against the narrow model, the allocation comparison with Torch-Pruning, tables and plots."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.train.train_testutils import ENV, REPO


@pytest.mark.slow
def test_quick_headline_experiment(tmp_path):
    pytest.importorskip("torch_pruning", reason="torch-pruning (the test extra) is not installed")
    out = tmp_path / "hl"
    res = subprocess.run([sys.executable, "-m", "experiments.headline", "--out", str(out), "--quick", "--sections",
                          "headline", "allocation", "gamma", "--no-latency"], cwd=REPO, capture_output=True,
                         text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    rows = result["rows"]
    head = [r for r in rows if r["section"] == "headline"]
    assert head and all(r["gmacs"] <= r["narrow_gmacs"] and r["gmacs"] >= 0.98 * r["narrow_gmacs"] for r in head)
    alloc = [r for r in rows if r["section"] == "allocation"]
    assert {r["method"] for r in alloc} == {"score", "uniform", "paper", "tp-magnitude", "tp-taylor"}
    for r in alloc:
        goal = r["wide_gmacs"] * {"50%": 0.5, "30%": 0.3}[r["target"]]
        assert r["gmacs"] <= goal * 1.0001 and r["gmacs"] >= goal * (0.98 if r["method"].startswith("tp") else 0.97)
        assert 0 <= r["top1_before"] <= 100 and 0 <= r["top1_after"] <= 100
    for name in ("headline.md", "allocation.md", "gamma.md"):
        assert (out / name).read_text().count("|") > 10
    assert (out / "allocation.png").read_bytes()[:4] == b"\x89PNG" and (out / "headline.png").is_file()


@pytest.mark.slow
def test_quick_latency_section(tmp_path):
    """Issue 13's accuracy-at-equal-latency rows in --quick mode: the wide model's latency table is profiled,
    the latency-targeted models land within 2% under the headline model's predicted latency, the loss-weighted
    MAC-targeted one under its MACs, every model of the seed is timed in one run, and the table compares each
    with the headline model of its seed."""
    out = tmp_path / "hl"
    res = subprocess.run([sys.executable, "-m", "experiments.headline", "--out", str(out), "--quick", "--sections",
                          "headline", "latency"], cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    lat = [r for r in result["rows"] if r["section"] == "latency"]
    assert {r["method"] for r in lat} == {"score-latency", "score-latency-macs", "score-loss"}
    for r in lat:
        if r["method"] == "score-loss":
            assert 0.98 * r["narrow_gmacs"] <= r["gmacs"] <= r["narrow_gmacs"]
        else:
            assert 0.98 * r["target_ms"] <= r["predicted_ms"] <= r["target_ms"]
    timed = result["latency"]["per_seed_median_ms"]
    assert set(timed) == {f"{m}-s0" for m in ("wide", "narrow", "score", "score-latency", "score-latency-macs",
                                              "score-loss")}
    assert all(ms > 0 for ms in timed.values())
    text = (out / "headline.md").read_text()
    assert "- score-latency against the default: seed 0: top-1" in text and "x the latency" in text
