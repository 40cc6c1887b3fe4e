"""``bench`` as a library call: candidates + a :class:`BenchConfig` -> a results document (see
:mod:`bench.schema`), measured live with interleaved blocks or read from device measurement files."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from snp_edge.engines.common import stats

from snp_edge.errors import SnpEdgeError
from snp_edge.models import RANDOM_WEIGHTS_NOTICE

from .backends import BACKENDS, default_threads
from .candidates import Candidate, make_runner, unique_labels
from .env import capture_env
from .measure import Progress, measure
from .schedule import default_block, make_plan
from .schema import SCHEMA_VERSION

log = logging.getLogger(__name__)



@dataclass
class BenchConfig:
    """How to measure. Latencies are per run of ``batch`` images, in ms.

    Attributes:
        warmup: untimed runs per candidate before measuring (paper: 200).
        runs: timed runs per candidate (paper: 1000; the paper reports their mean).
        block: timed runs per block of the interleaved schedule (None: :func:`~bench.schedule.default_block`).
        rewarm: untimed runs at the start of each block, after switching from another candidate.
        threads: ORT intra-op / torch threads (None: every core this process may use).
        baseline: label, source or 0-based index of the candidate speed-ups are relative to (None: first).
    """

    backend: str = "ort"
    batch: int = 1
    warmup: int = 200
    runs: int = 1000
    block: int | None = None
    rewarm: int = 1
    threads: int | None = None
    device: str = "cpu"
    fp16: bool = False
    seed: int = 0
    baseline: str | None = None

    def check(self) -> None:
        """Reject impossible settings with a one-line message."""
        if self.backend not in BACKENDS:
            raise SnpEdgeError(f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        for name in ("batch", "runs", "block", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SnpEdgeError(f"--{name} must be a positive integer, got {value}")
        for name in ("warmup", "rewarm"):
            if getattr(self, name) < 0:
                raise SnpEdgeError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.device not in ("cpu", "cuda"):
            raise SnpEdgeError(f"unknown device {self.device!r}; use cpu or cuda")
        if self.fp16 and not (self.backend == "torch" and self.device == "cuda"):
            raise SnpEdgeError("--fp16 needs --backend torch --device cuda (for TensorRT, build an FP16 engine)")


def baseline_index(cands: list[Candidate], baseline: str | None) -> int:
    """Index of the baseline: a 0-based index, a label or a source as given on the command line."""
    if baseline is None:
        return 0
    if baseline.isdigit():
        if int(baseline) >= len(cands):
            raise SnpEdgeError(f"--baseline {baseline} is out of range (0..{len(cands) - 1})")
        return int(baseline)
    for i, c in enumerate(cands):
        if baseline in (c.label, c.source):
            return i
    raise SnpEdgeError(f"--baseline {baseline!r} matches no candidate ({', '.join(c.label for c in cands)})")


def run_bench(cands: list[Candidate], cfg: BenchConfig, progress: Progress | None = None,
              command: list[str] | None = None) -> dict[str, Any]:
    """Benchmark ``cands`` (all live, or all measurement files) and return the results document.

    ``progress(done, total)`` is called after every block (runs, warm-up included); a KeyboardInterrupt
    raised there or by Ctrl-C yields a document marked ``partial``.
    """
    cfg.check()
    if not cands:
        raise SnpEdgeError("no candidates to benchmark")
    measured = [c.kind == "measured" for c in cands]
    if any(measured) and not all(measured):
        raise SnpEdgeError("cannot mix measurement files with live candidates: speed-ups across machines "
                           "are meaningless; benchmark them in separate runs")
    unique_labels(cands)
    base = baseline_index(cands, cfg.baseline)
    if all(measured):
        return _ingested(cands, cfg, base, command)

    threads = cfg.threads or default_threads()
    block = cfg.block or default_block(cfg.runs)
    with tempfile.TemporaryDirectory(prefix="snp-edge-bench-") as tmp:
        runners = [make_runner(c, cfg.backend, cfg.batch, threads, cfg.device, cfg.fp16, Path(tmp) / f"{i}.onnx")
                   for i, c in enumerate(cands)]
        for c, runner in zip(cands, runners, strict=True):
            log.info("preparing %s on %s", c.label, cfg.backend)
            runner.prepare()
        env = capture_env()
        plan = make_plan(len(cands), cfg.warmup, cfg.runs, block, cfg.seed)
        result = measure(runners, plan, cfg.rewarm, progress)
        settings = [r.settings() for r in runners]
        for r in runners:
            r.close()
    if result.partial:
        log.warning("interrupted: writing the runs measured so far (partial results)")
    protocol = {**asdict(cfg), "baseline": cands[base].label, "threads": threads, "block": block,
                "device": "cuda" if cfg.backend == "trt" else cfg.device, "interleaved": True,
                "precision": "fp16" if cfg.fp16 else "fp32"}
    lat = [stats.summarize(t) for t in result.times_ms]
    return build_results(cands, lat, result.times_ms, settings, base, protocol, env, result.partial, command)


def _ingested(cands: list[Candidate], cfg: BenchConfig, base: int, command: list[str] | None) -> dict[str, Any]:
    """Results document of measurements made elsewhere (protocol and environment from the files). Files with
    a batch sweep (device bench /3) give one document per batch size that every file measured: the smallest
    is the document itself, the others are in its ``by_batch`` list (one report section each)."""
    ms = [c.measured or {} for c in cands]
    if any(m.get("sections") for m in ms):
        per_file = [{s["batch"]: s for s in m["sections"]} if m.get("sections") else {m.get("batch") or cfg.batch: m}
                    for m in ms]
        common = sorted(set.intersection(*(set(f) for f in per_file)))
        if not common:
            raise SnpEdgeError("the measurement files share no batch size ({})".format(
                "; ".join(",".join(map(str, sorted(f))) for f in per_file)))
        docs = []
        for batch in common:
            for c, m, f in zip(cands, ms, per_file, strict=True):
                c.measured = {**{k: v for k, v in m.items() if k != "sections"}, **f[batch]}
            docs.append(_ingested(cands, cfg, base, command))
        for c, m in zip(cands, ms, strict=True):
            c.measured = m
        if len(docs) > 1:
            docs[0]["by_batch"] = docs[1:]
        return docs[0]
    batches = {m.get("batch") or cfg.batch for m in ms}
    if len(batches) > 1:
        raise SnpEdgeError(f"measurement files disagree on the batch size ({sorted(batches)})")
    envs = [m["environment"] for m in ms if m.get("environment")]
    env = {"measured_elsewhere": True, **(envs[0] if envs else {})}
    facts = [m.get("run") or {"backend": "trt", "device": "cuda"} for m in ms]  # exportTimes, logs: TensorRT
    kinds = sorted({f"{f['backend']} on {f['device']}" for f in facts})
    if len(kinds) > 1:
        raise SnpEdgeError(f"the measurement files come from different backends ({'; '.join(kinds)}): "
                           "compare runs of one backend and device")
    precisions = sorted({f.get("precision") for f in facts} - {None})
    protocol = {"backend": facts[0]["backend"], "device": facts[0]["device"], "precision": "/".join(precisions) or None,
                "batch": batches.pop(), "baseline": cands[base].label, "interleaved": False,
                "sources": sorted({m.get("tool", "?") for m in ms}), "warmup": ms[0].get("warmup")}
    lat = [stats.summarize(m["times_ms"]) if m.get("times_ms") else m.get("latency_ms") for m in ms]
    times = [m.get("times_ms") or [] for m in ms]
    return build_results(cands, lat, times, [m.get("settings", {}) for m in ms], base, protocol, env, False, command)


def build_results(cands: list[Candidate], lat: list[dict | None], times: list[list[float]], settings: list[dict],
                  base: int, protocol: dict, env: dict, partial: bool, command: list[str] | None) -> dict[str, Any]:
    """Assemble the versioned results document: per-candidate latency (ms), throughput (images/s),
    speed-ups over the baseline and kernel efficiency, plus protocol, environment and notices."""
    batch = protocol["batch"]
    rows = []
    for c, summary, t, s in zip(cands, lat, times, settings, strict=True):
        row: dict[str, Any] = {
            "label": c.label, "source": c.source, "kind": c.kind, "role": c.role,
            "base_model": c.extra.get("base_model"), "preset": c.extra.get("preset"),
            "gmacs": c.gmacs, "params": c.params, "top1": c.top1,
            "accuracy_meaningful": c.accuracy_meaningful, "notice": c.notice, "settings": s,
            "latency_ms": summary, "throughput_ips": stats.throughput(batch, summary["mean"]) if summary else None,
            "speedup_median": None, "speedup_mean": None, "kernel_efficiency": None, "times_ms": t,
        }
        if summary and lat[base]:
            row.update(stats.speedups(lat[base], summary, cands[base].gmacs, c.gmacs))
        if c.extra.get("precision"):  # an INT8 row (bench/int8_candidates.py)
            row.update(precision=c.extra["precision"], fp32_label=c.extra.get("fp32_label"),
                       quantization=c.extra.get("quantization"))
        predicted = c.extra.get("predicted_ms")
        if predicted:
            row.update(predicted_ms=predicted, predicted_for=c.extra.get("predicted_for"),
                       predicted_error=summary["median"] / predicted - 1 if summary else None)
        rows.append(row)
    random_weights = [c.label for c in cands if c.accuracy_meaningful is False]
    which = "all models" if len(random_weights) == len(cands) else ", ".join(random_weights)
    notice = f"{RANDOM_WEIGHTS_NOTICE} ({which})" if random_weights else None
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "snp-edge bench",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "partial": partial,
        "notice": notice,
        "protocol": protocol,
        "environment": env,
        "candidates": rows,
    }
