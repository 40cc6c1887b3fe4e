"""Every experiment and benchmark script imports (nothing there is left behind a rename), and the experiments'
shared harness resumes rows measured under the same plan only."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

from experiments.harness import RowCache, plan_key, stats

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.py")), ids=lambda p: p.name)
def test_every_experiment_imports(path):
    importlib.import_module(f"experiments.{path.stem}")


@pytest.mark.parametrize("path", sorted((REPO / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_every_benchmark_script_imports(path):
    spec = importlib.util.spec_from_file_location(f"_benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the scripts run only under __main__
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"


def test_row_cache_resumes_rows_of_the_same_plan_only(tmp_path):
    path = tmp_path / "rows.jsonl"
    cache = RowCache(path, ("seed", "criterion"), plan_key({"epochs": 3}))
    assert (0, "l1") not in cache and cache.get(0, "l1") is None
    row = cache.add({"seed": 0, "criterion": "l1", "top1": 91.5})
    assert row["plan_key"] == '{"epochs": 3}' and cache[(0, "l1")] == row
    again = RowCache(path, ("seed", "criterion"), plan_key({"epochs": 3}))
    assert again.get(0, "l1") == row  # an interrupted run continues from the file
    assert RowCache(path, ("seed", "criterion"), plan_key({"epochs": 4})).rows == {}  # another plan: nothing reused
    per_row = RowCache(path, ("seed", "criterion"), lambda r: plan_key({"epochs": 3 if r["seed"] == 0 else 1}))
    assert (0, "l1") in per_row


def test_stats_are_mean_and_sample_std():
    assert stats([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    assert stats([5.0])["std"] == 0.0
