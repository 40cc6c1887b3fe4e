"""Measurements made on the device, read back so they appear in the same report as host runs.

Understood inputs (parsed with :mod:`engines.trtexec`, the device side's own parsers):
- ``python3 -m engines bench BUNDLE --json-file FILE`` output (schema ``snp-edge-device-bench/1`` or ``/2``): per-run
  latencies, batch, warm-up, engine precision and the device environment;
- trtexec ``--exportTimes=FILE.json``: per-run GPU compute times (``computeMs``). TensorRT 8.2 also exports
  its warm-up runs, which cannot be told apart here: prefer ``engines bench --trtexec --json``;
- a trtexec console log (``.txt``/``.log``): its "Performance summary" (GPU compute time statistics only,
  no per-run times).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from snp_edge.engines.errors import EnginesError
from snp_edge.engines.trtexec import compute_times_ms, parse_summary

from snp_edge.errors import SnpEdgeError

DEVICE_BENCH_SCHEMAS = ("snp-edge-device-bench/1", "snp-edge-device-bench/2")


def _from_device_bench(doc: dict, path: Path) -> dict[str, Any]:
    times = doc.get("latencies_ms")
    if not isinstance(times, list) or not times or not all(isinstance(t, int | float) for t in times):
        raise SnpEdgeError(f"{path}: device bench JSON without a non-empty latencies_ms list")
    model = doc.get("model")
    info = model if isinstance(model, dict) else {"base_model": model}  # bundle manifest "model", or its name
    settings = {k: doc.get(k) for k in ("engine", "target", "precision", "timer", "warmup", "created")}
    settings["trtexec_summary"] = doc.get("trtexec_summary")
    return {"tool": "engines bench", "times_ms": [float(t) for t in times], "batch": doc.get("batch"),
            "warmup": doc.get("warmup"), "environment": doc.get("env"), "settings": settings,
            **{k: info.get(k) for k in ("base_model", "gmacs", "params", "pruned", "accuracy_meaningful", "notice")}}


def load_measurement(path: Path) -> dict[str, Any]:
    """Normalized measurement: ``tool``; ``times_ms`` (per run) or ``latency_ms`` (summary: mean, median,
    min, max, percentiles, in ms); and where the file records them ``batch``, ``warmup``, ``environment``,
    ``settings`` and model facts (``base_model``, ``gmacs``, ``params``, ``pruned``, ``accuracy_meaningful``)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SnpEdgeError(f"cannot read {path}: {exc}") from None
    try:
        if path.suffix.lower() != ".json":
            summary = parse_summary(text)
            return {"tool": "trtexec log", "times_ms": None, "latency_ms": summary["gpu_compute_ms"],
                    "settings": {"metric": "GPU compute time", "trtexec_summary": summary}}
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise SnpEdgeError(f"{path}: invalid JSON ({exc})") from None
        if isinstance(doc, dict) and doc.get("schema") in DEVICE_BENCH_SCHEMAS:
            return _from_device_bench(doc, path)
        if isinstance(doc, list):
            return {"tool": "trtexec --exportTimes", "times_ms": compute_times_ms(doc),
                    "settings": {"metric": "GPU compute time per run (computeMs)"}}
    except EnginesError as exc:
        raise SnpEdgeError(f"{path}: {exc}") from None
    raise SnpEdgeError(f"{path}: expected `engines bench --json` output ({DEVICE_BENCH_SCHEMAS[-1]}) "
                       "or a trtexec --exportTimes list")
