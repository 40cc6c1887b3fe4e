"""``snp-edge bench``: benchmark models interleaved, or report measurements made on a device."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import args as groups


def bench_config(args: argparse.Namespace, protocol: str = "paper"):
    """A :class:`~snp_edge.bench.run.BenchConfig` from the measurement group's options."""
    from ..bench.run import BenchConfig

    warmup, runs = groups.protocol_counts(args, protocol)
    cfg = BenchConfig(backend=args.backend, batch=args.batch, device=args.device, fp16=args.fp16, block=args.block,
                      warmup=warmup, runs=runs, threads=args.threads, seed=args.seed, baseline=args.baseline)
    cfg.check()
    return cfg


def apply_top1(cands: list, items: list[str]) -> None:
    """``["deit_tiny_patch16_224=72.2"]`` -> candidate.top1, matched by label or source."""
    from ..errors import SnpEdgeError

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


def progress_bar() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar (stderr, hidden when not a terminal) created on the first update, and its closer."""
    from ..progress import bar as progress

    bar: list = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(progress(total=total, unit="run", desc="bench", disable=None))
        bar[0].update(done - bar[0].n)

    return update, lambda: bar and bar[0].close()


class _StderrHandler(logging.StreamHandler):
    """Logs to whatever ``sys.stderr`` is when a record is emitted (tests and tqdm replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def log_to_stderr(command: str) -> None:
    """The bench stage's log lines as ``snp-edge COMMAND: ...`` on stderr."""
    log = logging.getLogger("snp_edge.bench")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(f"snp-edge {command}: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def measure_and_write(cands: list, cfg, out: Path, force: bool, command: list[str] | None = None) -> int:
    """Benchmark ``cands``, print the Markdown table and write results.{json,md,png} into ``out``."""
    from ..bench.report import markdown, write_report
    from ..bench.run import run_bench

    update, close = progress_bar()
    try:
        doc = run_bench(cands, cfg, progress=update, command=command or sys.argv)
    finally:
        close()
    paths = write_report(doc, out, force)
    print(markdown(doc))
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    if doc["partial"]:
        print("interrupted: results above are partial", file=sys.stderr)
        return 130
    return 0


def default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench.candidates import from_spec
    from ..bench.report import check_out_dir
    from ..vit import parse_model_args

    log_to_stderr("bench")
    cfg = bench_config(args)
    out = args.out or default_out("bench")
    check_out_dir(out, args.force)
    model_args = parse_model_args(args.model_arg)
    cands = [from_spec(spec, args.weights, model_args) for spec in args.candidates]
    apply_top1(cands, args.top1)
    return measure_and_write(cands, cfg, out, args.force)


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark models (interleaved) and write results.json/.md/.png",
                       formatter_class=groups.formatter,
                       description="Benchmark ONNX files, TensorRT engines, pruned-model folders or timm model "
                                   "names, interleaved; or report measurement files made on a device "
                                   "(python3 -m engines bench --json-file, trtexec --exportTimes JSON, trtexec logs).")
    p.add_argument("candidates", nargs="+", metavar="MODEL",
                   help=".onnx | .engine/.plan | pruned folder | timm name | .json/.txt/.log device measurements")
    groups.model(p)
    groups.measurement(p)
    groups.seed(p)
    groups.output(p, "output folder (default: runs/bench-<time>)", required=False, json_flag=False)
    p.set_defaults(func=cmd_bench)
