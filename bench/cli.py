"""``snp-edge bench`` and ``snp-edge compare``: registered on the snp-edge command line by
:func:`add_subparsers` (``python -m bench`` runs the same command line)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from snp_edge.errors import SnpEdgeError

from .backends import BACKENDS
from .candidates import Candidate
from .run import QUICK, BenchConfig

PAPER = {"warmup": 200, "runs": 1000}


def add_measure_args(p: argparse.ArgumentParser) -> None:
    """Measurement and output options shared by ``bench`` and ``compare``."""
    m = p.add_argument_group("measurement")
    m.add_argument("--backend", default="ort", metavar="|".join(BACKENDS),
                   help="ort (ONNX Runtime), torch (PyTorch eager) or trt (TensorRT engines) (default ort)")
    m.add_argument("--device", default="cpu", metavar="cpu|cuda", help="where ort/torch run (default cpu)")
    m.add_argument("--fp16", action="store_true", help="half precision (torch on cuda only)")
    m.add_argument("--batch", type=int, default=1, metavar="N", help="images per run (paper: 1 on edge, 64 on GPU)")
    m.add_argument("--warmup", type=int, metavar="N", help=f"untimed runs per model (default {PAPER['warmup']}, "
                                                           f"--quick {QUICK['warmup']})")
    m.add_argument("--runs", type=int, metavar="N", help=f"timed runs per model (default {PAPER['runs']}, "
                                                         f"--quick {QUICK['runs']})")
    m.add_argument("--quick", action="store_true", help="few runs, for smoke tests and CI (not for reporting)")
    m.add_argument("--block", type=int, metavar="K", help="timed runs per interleaved block (default: runs/10, at most 50)")
    m.add_argument("--threads", type=int, metavar="N", help="ORT intra-op / torch threads (default: all cores)")
    m.add_argument("--seed", type=int, default=0, help="seed of the interleaving order and the input (default 0)")
    m.add_argument("--baseline", metavar="NAME_OR_INDEX",
                   help="model the speed-ups are relative to: label, source or 0-based index (default: first)")
    m.add_argument("--top1", action="append", default=[], metavar="NAME=PCT",
                   help="known top-1 accuracy (%%) of a model, by label or source, for the table and plot; repeatable")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, help="output folder (default runs/<command>-<timestamp>)")
    o.add_argument("--force", action="store_true", help="overwrite results already in --out")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """--warmup/--runs given explicitly win over --quick, which wins over the paper's 200/1000."""
    counts = QUICK if args.quick else PAPER
    return BenchConfig(
        backend=args.backend, batch=args.batch, device=args.device, fp16=args.fp16, block=args.block,
        warmup=counts["warmup"] if args.warmup is None else args.warmup,
        runs=counts["runs"] if args.runs is None else args.runs,
        threads=args.threads, seed=args.seed, baseline=args.baseline)


def apply_top1(cands: list[Candidate], items: list[str]) -> None:
    """``["deit_tiny_patch16_224=72.2"]`` -> candidate.top1, matched by label or source."""
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            pct = float(value)
        except ValueError:
            pct = None
        if not sep or pct is None or not 0 <= pct <= 100:
            raise SnpEdgeError(f"--top1 expects NAME=PCT with PCT in 0..100, got {item!r}")
        matches = [c for c in cands if name in (c.label, c.source)]
        if not matches:
            raise SnpEdgeError(f"--top1 {name!r} matches no candidate ({', '.join(c.label for c in cands)})")
        for c in matches:
            c.top1 = pct


def _progress_bar() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar (stderr, hidden when not a terminal) created on the first update, and its closer."""
    from tqdm import tqdm

    bar: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, unit="run", desc="bench", disable=None, leave=False))
        bar[0].update(done - bar[0].n)

    return update, lambda: bar and bar[0].close()


def _measure_and_write(cands: list[Candidate], cfg: BenchConfig, out: Path, force: bool) -> int:
    from .report import markdown, write_report
    from .run import run_bench

    update, close = _progress_bar()
    try:
        doc = run_bench(cands, cfg, progress=update, command=sys.argv)
    finally:
        close()
    paths = write_report(doc, out, force)
    print(markdown(doc))
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    if doc["partial"]:
        print("interrupted: results above are partial", file=sys.stderr)
        return 130
    return 0


class _StderrHandler(logging.StreamHandler):
    """Logs to whatever ``sys.stderr`` is when a record is emitted (tests and tqdm replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _prepare(args: argparse.Namespace, command: str) -> tuple[BenchConfig, Path, dict]:
    """Check options and the output folder before any model is loaded."""
    from snp_edge.models import parse_model_args

    from .report import check_out_dir

    log = logging.getLogger("bench")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(f"snp-edge {command}: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    cfg = config_from_args(args)
    cfg.check()
    out = args.out or Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_out_dir(out, args.force)
    return cfg, out, parse_model_args(args.model_arg)


def cmd_bench(args: argparse.Namespace) -> int:
    from .candidates import from_spec

    cfg, out, model_args = _prepare(args, "bench")
    cands = [from_spec(spec, args.weights, model_args) for spec in args.candidates]
    apply_top1(cands, args.top1)
    return _measure_and_write(cands, cfg, out, args.force)


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_candidates

    cfg, out, model_args = _prepare(args, "compare")
    cands = compare_candidates(args.model, args.preset, args.target_gmacs, args.weights, model_args,
                               args.baseline_models, args.calib, args.round_to)
    apply_top1(cands, args.top1)
    return _measure_and_write(cands, cfg, out, args.force)


def add_subparsers(sub: argparse._SubParsersAction) -> None:
    """Register ``bench`` and ``compare`` on the snp-edge subcommand parser ``sub``."""
    from snp_edge.cli import add_model_args

    from .compare import DEFAULT_REFERENCES

    p = sub.add_parser("bench", help="benchmark models (interleaved) and write results.json/.md/.png",
                       description="Benchmark ONNX files, TensorRT engines, pruned-model folders or timm model "
                                   "names, interleaved; or report measurement files made on a device "
                                   "(trtexec --exportTimes JSON, engines bench --json, trtexec logs).")
    p.add_argument("candidates", nargs="+", metavar="MODEL",
                   help=".onnx | .engine/.plan | pruned folder | timm name | .json/.txt/.log device measurements")
    add_model_args(p, weights_default="random")
    add_measure_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("compare", help="unpruned vs SNP-pruned vs reference models, benchmarked together",
                       description="Prune --model with each --preset / --target-gmacs, then benchmark the unpruned "
                                   "model, its SNP versions and the reference models in one interleaved run.")
    p.add_argument("--model", required=True, help="timm model name, e.g. deit_small_patch16_224")
    p.add_argument("--preset", action="append", default=[], help="SNP preset to compare (repeatable)")
    p.add_argument("--target-gmacs", action="append", type=float, default=[], metavar="X",
                   help="also prune to X GMACs by width search (repeatable)")
    p.add_argument("--baseline-models", nargs="*", default=list(DEFAULT_REFERENCES), metavar="NAME",
                   help=f"reference timm models (default {' '.join(DEFAULT_REFERENCES)}; none: give the flag alone)")
    p.add_argument("--calib", help="calibration images for the SNP scores (see snp-edge prune --help)")
    p.add_argument("--round-to", type=int, default=1, metavar="N",
                   help="round pruned widths to multiples of N, staying under the target (default 1: none)")
    add_model_args(p)
    add_measure_args(p)
    p.set_defaults(func=cmd_compare)
