"""What every experiment shares: the ``rows.jsonl`` resume cache and the mean/std statistics.

An experiment measures rows (one per seed, target, criterion, ...); each finished row is appended to
``OUT/rows.jsonl`` at once, with the key of the plan it was measured under, so an interrupted run continues
where it stopped and a run under another plan (``--quick``, other epochs) never reuses it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path


def stats(values: Iterable[float]) -> dict:
    """mean, sample standard deviation (0 for one value), min, max and n of ``values``."""
    values = list(values)
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def plan_from(quick: bool, full, small, **given):
    """A copy of the experiment's plan (``small`` with ``--quick``, else ``full()``), with each ``given`` field
    set where the command line gave it (not None, not an empty list): the module's plans are never changed."""
    return replace(small if quick else full(), **{k: v for k, v in given.items() if v is not None and v != []})


def plan_key(plan: dict) -> str:
    """A plan as the string stored with each row (sorted JSON: equal plans give equal keys)."""
    return json.dumps(plan, sort_keys=True)


class RowCache:
    """The rows of ``path`` (``rows.jsonl``) measured under the current plan, by their identifying fields.

    ``fields``: the names whose values identify a row; ``key_of``: the plan key a row must carry to be reused
    (a string, or a function of the row, when parts of an experiment have plans of their own)."""

    def __init__(self, path: Path, fields: tuple[str, ...], key_of: str | Callable[[dict], str]) -> None:
        self.path, self.fields = Path(path), fields
        self.key_of = key_of if callable(key_of) else (lambda _row: key_of)
        self.rows: dict[tuple, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    if row.get("plan_key") == self.key_of(row):
                        self.rows[self.ident(row)] = row

    def ident(self, row: dict) -> tuple:
        return tuple(row[f] for f in self.fields)

    def get(self, *ident) -> dict | None:
        """The cached row with these identifying values (in ``fields`` order), or None."""
        return self.rows.get(tuple(ident))

    def __contains__(self, ident: tuple) -> bool:
        return tuple(ident) in self.rows

    def __getitem__(self, ident: tuple) -> dict:
        return self.rows[tuple(ident)]

    def add(self, row: dict) -> dict:
        """Record a finished row (``plan_key`` added), appended to the file at once; returns it."""
        row = {**row, "plan_key": self.key_of(row)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.rows[self.ident(row)] = row
        return row
