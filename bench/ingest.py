"""Measurements made on the device, read back so they appear in the same report as host runs.

Understood inputs (parsed with :mod:`engines.trtexec`, the device side's own parsers):
- ``python3 -m engines bench BUNDLE --json-file FILE`` output (schema ``snp-edge-device-bench/1`` or ``/2``): per-run
  latencies, batch, warm-up, engine precision and the device environment; ``/3``: a batch sweep, one section
  per batch size (GPU and end-to-end times, telemetry) and the bundle manifest's model block, read as one
  measurement per batch size (``sections``; the report gets one section per batch size);
- trtexec ``--exportTimes=FILE.json``: per-run GPU compute times (``computeMs``). TensorRT 8.2 also exports
  its warm-up runs, which cannot be told apart here: prefer ``engines bench --trtexec --json``;
- a trtexec console log (``.txt``/``.log``): its "Performance summary" (GPU compute time statistics only,
  no per-run times).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from snp_edge.engines.common.errors import EnginesError
from snp_edge.engines.common.schema import Document, check_finite_tree
from snp_edge.engines.common.stats import summary_problem
from snp_edge.engines.trtexec import compute_times_ms, parse_summary

from snp_edge.errors import SnpEdgeError

DEVICE_BENCH_SCHEMAS = ("snp-edge-device-bench/1", "snp-edge-device-bench/2", "snp-edge-device-bench/3")
MAX_BYTES = 64 << 20
MAX_RUNS = 10_000_000
MAX_MS = 3.6e6  # one hour per run: a latency above it is a unit error or a corrupt file
MAX_BATCH = 1 << 20
STAT_KEYS = ("min", "max", "mean", "median")


def _latencies(doc: Document, values: object, field: str) -> list[float]:
    """Per-run latencies: a non-empty list of finite numbers in (0, MAX_MS] ms."""
    if not isinstance(values, list) or not values or len(values) > MAX_RUNS:
        doc.fail(field, f"a list of 1 to {MAX_RUNS} latencies in ms", values)
    for i, t in enumerate(values):
        doc.number_value(t, f"{field}[{i}]", 0, MAX_MS, exclusive_minimum=True)
    return [float(t) for t in values]


def _check_summary(doc: Document, stats: object, field: str) -> None:
    """A latency summary (None: absent) internally consistent: all > 0, min <= median <= p95 <= max, ..."""
    if stats is None:
        return
    problem = summary_problem(stats)
    if problem is not None:
        key, expected = problem
        doc.fail(f"{field}.{key}" if key else field, expected, stats.get(key) if isinstance(stats, dict) else stats)


def _model_facts(doc: Document, model: object) -> dict[str, Any]:
    """The bundle manifest's ``model`` entry (or just its name), checked field by field."""
    if model is None or isinstance(model, str):
        return {"base_model": model}
    if not isinstance(model, dict):
        doc.fail("model", "an object or a model name", model)
    return {"base_model": doc.str(model, "base_model", "model.base_model", default=None),
            "gmacs": doc.number(model, "gmacs", "model.gmacs", 0, 1e6, exclusive_minimum=True, default=None),
            "params": doc.int(model, "params", "model.params", 1, default=None),
            "pruned": doc.bool(model, "pruned", "model.pruned", default=None),
            "accuracy_meaningful": doc.bool(model, "accuracy_meaningful", "model.accuracy_meaningful", default=None),
            "notice": doc.str(model, "notice", "model.notice", default=None)}


DEVICE_BACKENDS = {"tensorrt": "trt", "trtexec": "trt", "onnxruntime": "ort"}  # engines bench -> report names


def run_facts(d: Document, doc: dict) -> dict[str, Any]:
    """``{backend, device, precision}`` of a device bench document, in the report's terms: backend "trt" or
    "ort", device "cuda", "dla" or ONNX Runtime's ("cpu", "cuda"); schema /1 was TensorRT only."""
    backend = d.dict(doc, "backend", "backend", default=None) or {}
    name = backend.get("backend", "tensorrt")
    if name not in DEVICE_BACKENDS:
        d.fail("backend.backend", "one of " + ", ".join(sorted(DEVICE_BACKENDS)), name)
    if DEVICE_BACKENDS[name] == "ort":
        device = backend.get("device") or "cpu"
    else:
        device = "dla" if backend.get("dla_core") is not None else "cuda"
    return {"backend": DEVICE_BACKENDS[name], "device": str(device),
            "precision": doc.get("precision") or backend.get("precision")}


def device_environment(env: dict | None) -> dict[str, Any] | None:
    """The device's ``env`` (engines.envinfo.collect) with the report's keys added: ``os`` (L4T release on a
    Jetson), ``cpu`` {model, usable_cores} and ``versions`` {python, numpy, onnxruntime, Pillow, TensorRT}."""
    if not env:
        return env
    jetson = env.get("jetson") or {}
    os_name = env.get("os") or (f"L4T {jetson['l4t']}" if jetson.get("l4t") else None)
    if jetson.get("l4t") and env.get("os"):
        os_name = f"{env['os']} (L4T {jetson['l4t']})"
    cpu = {"model": env.get("cpu_model") or jetson.get("model") or env.get("machine"),
           "usable_cores": env.get("cpu_count")}
    versions = {k: env.get(k) for k in ("python", "numpy", "onnxruntime", "pillow", "tensorrt")}
    return {**env, "os": os_name, "cpu": {k: v for k, v in cpu.items() if v is not None},
            "versions": {("Pillow" if k == "pillow" else k): v for k, v in versions.items() if v}}


def _from_device_bench(doc: dict, path: Path) -> dict[str, Any]:
    d = Document(path, SnpEdgeError)
    times = _latencies(d, d.get(doc, "latencies_ms", "latencies_ms"), "latencies_ms")
    batch = d.int(doc, "batch", "batch", 1, MAX_BATCH, default=None)
    env = d.dict(doc, "env", "env", default=None)
    settings = {k: doc.get(k) for k in ("engine", "target", "precision", "timer", "warmup", "created")}
    settings["trtexec_summary"] = doc.get("trtexec_summary")
    return {"tool": "engines bench", "times_ms": times, "batch": batch, "warmup": doc.get("warmup"),
            "environment": device_environment(env), "settings": settings, "run": run_facts(d, doc),
            **_model_facts(d, doc.get("model"))}


def _from_export_times(records: list, path: Path) -> dict[str, Any]:
    d = Document(path, SnpEdgeError)
    if not records or len(records) > MAX_RUNS:
        d.fail("(top level)", f"a list of 1 to {MAX_RUNS} trtexec --exportTimes records", f"{len(records)} records")
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            d.fail(f"[{i}]", "a record with computeMs", r)
        d.number(r, "computeMs", f"[{i}].computeMs", 0, MAX_MS, exclusive_minimum=True)
        d.number(r, "startComputeMs", f"[{i}].startComputeMs", default=None)
    return {"tool": "trtexec --exportTimes", "times_ms": compute_times_ms(records),
            "settings": {"metric": "GPU compute time per run (computeMs)"}}


def _from_trtexec_log(text: str, path: Path) -> dict[str, Any]:
    summary = parse_summary(text)
    d = Document(f"{path} (GPU Compute Time)", SnpEdgeError)
    stats = summary["gpu_compute_ms"]
    for key in STAT_KEYS:
        d.number(stats, key, key, 0, MAX_MS, exclusive_minimum=True)
    for key, value in stats.items():
        d.number_value(value, key, 0, MAX_MS, exclusive_minimum=True)
    _check_summary(d, stats, "gpu_compute_ms")
    return {"tool": "trtexec log", "times_ms": None, "latency_ms": stats,
            "settings": {"metric": "GPU compute time", "trtexec_summary": summary}}


def _from_device_sweep(doc: dict, path: Path) -> dict[str, Any]:
    """Schema /3: the model facts, and per batch size a measurement of its GPU times (end-to-end times where
    the backend has no GPU time, ONNX Runtime), with the end-to-end statistics and telemetry in its settings."""
    d = Document(path, SnpEdgeError)
    facts = _model_facts(d, d.get(doc, "model", "model"))
    sections = d.get(doc, "sections", "sections")
    if not isinstance(sections, list) or not sections:
        d.fail("sections", "a non-empty list of batch sections", sections)
    backend = d.dict(doc, "backend", "backend", default=None) or {}
    protocol = d.dict(doc, "protocol", "protocol", default=None) or {}
    out = []
    for i, s in enumerate(sections):
        if not isinstance(s, dict):
            d.fail(f"sections[{i}]", "an object", s)
        batch = d.int(s, "batch", f"sections[{i}].batch", 1, MAX_BATCH)
        gpu = s.get("gpu_latencies_ms") or []
        key = "gpu_latencies_ms" if gpu else "e2e_latencies_ms"
        times = _latencies(d, s.get(key), f"sections[{i}].{key}")
        for stats_key in ("gpu_ms", "e2e_ms"):
            _check_summary(d, s.get(stats_key), f"sections[{i}].{stats_key}")
        metric = "GPU time per run (CUDA events / trtexec computeMs)" if gpu else "end-to-end time per run"
        settings = {"engine": doc.get("engine"), "target": doc.get("target"), "precision": doc.get("precision"),
                    "backend": backend.get("backend"), "metric": metric, "e2e_ms": s.get("e2e_ms"),
                    "telemetry": s.get("telemetry"), "created": doc.get("created"),
                    "cuda_graph": protocol.get("cuda_graph"), "preprocess_in_e2e": protocol.get("preprocess_in_e2e")}
        out.append({"tool": "engines bench", "times_ms": times, "batch": batch,
                    "warmup": {"warmup_runs": protocol.get("warmup_runs")}, "settings": settings})
    return {"tool": "engines bench", "environment": device_environment(d.dict(doc, "env", "env", default=None)),
            "run": run_facts(d, doc), "sections": out,
            "batch": out[0]["batch"], "times_ms": out[0]["times_ms"], "warmup": out[0]["warmup"],
            "settings": out[0]["settings"], **facts}


def load_measurement(path: Path) -> dict[str, Any]:
    """Normalized measurement: ``tool``; ``times_ms`` (per run) or ``latency_ms`` (summary: mean, median,
    min, max, percentiles, in ms); and where the file records them ``batch``, ``warmup``, ``environment``,
    ``settings`` and model facts (``base_model``, ``gmacs``, ``params``, ``pruned``, ``accuracy_meaningful``).

    Every field used is checked (one line naming the file and field): latencies finite and in (0, 1 h] ms,
    batch a positive integer, GMACs and params positive, names strings; NaN or infinities anywhere refused."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SnpEdgeError(f"{path}: larger than {MAX_BYTES >> 20} MiB; not a measurement file")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SnpEdgeError(f"cannot read {path}: {exc}") from None
    try:
        if path.suffix.lower() != ".json":
            return _from_trtexec_log(text, path)
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise SnpEdgeError(f"{path}: invalid JSON ({exc})") from None
        except RecursionError:
            raise SnpEdgeError(f"{path}: JSON nested too deeply") from None
        check_finite_tree(doc, str(path), SnpEdgeError)
        if isinstance(doc, dict) and doc.get("schema") == DEVICE_BENCH_SCHEMAS[-1]:
            return _from_device_sweep(doc, path)
        if isinstance(doc, dict) and doc.get("schema") in DEVICE_BENCH_SCHEMAS:
            return _from_device_bench(doc, path)
        if isinstance(doc, list):
            return _from_export_times(doc, path)
    except EnginesError as exc:
        raise SnpEdgeError(f"{path}: {exc}") from None
    raise SnpEdgeError(f"{path}: expected `engines bench --json` output ({DEVICE_BENCH_SCHEMAS[-1]}) "
                       "or a trtexec --exportTimes list")
