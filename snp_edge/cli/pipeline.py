"""``snp-edge run`` (the main job) and ``snp-edge compare``: one orchestrator.

Both load a model, prune it to one or more targets, put the unpruned model and the reference models (DeiT-Tiny
by default) beside the pruned ones, and benchmark all of them interleaved. ``run`` does it for one target and
keeps everything a deployment needs::

    OUT/pruned/            model.safetensors + model.json
    OUT/onnx/*.onnx        the pruned model, the unpruned model and the reference models (verified)
    OUT/bundles/TARGET/    device bundles (the target's opset: jetson-nano 13, rtx3090 17, ...)
    OUT/bench/             results.json, results.md, results.png
    OUT/summary.json       what was done, the numbers, and the notice

``compare`` prunes to every --preset / --config / --target-gmacs given, keeps the models in memory, and writes
only the benchmark report (results.json/.md/.png) into OUT.

Defaults of ``run``: DeiT-Small with the paper's 1.3 GMACs preset, pretrained weights when they load (else
random weights, and every output says that accuracy is then meaningless), bundles for the Jetson Nano and the
RTX 3090. Widths are rounded to what every target wants (``--round-to``'s default: 8 when a target has FP16
tensor cores, as the RTX 3090 and Jetson Orin do; 1 for the Nano alone); ``--round-to 1`` keeps the preset's
exact widths. ``compare --target T`` aligns for T the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..spec import TARGET_KEYS
from . import args as groups
from .bench import apply_top1, bench_config, default_out, log_to_stderr, measure_and_write
from .prune import prune_from_args

DEFAULT_MODEL = "deit_small_patch16_224"
DEFAULT_PRESET = "deit_s_1.3g"
DEFAULT_REFERENCES = ("deit_tiny_patch16_224",)
DEFAULT_TARGETS = ("jetson-nano", "rtx3090")


@dataclass
class Member:
    """One model of the comparison: its handle, role (unpruned | pruned | reference), label, and pruning."""

    handle: object
    role: str
    label: str
    tag: str | None = None  # "deit_s_1.3g", "1.3 GMACs, round-to 8", ...
    prune_result: object | None = None


def _stage(name: str) -> None:
    print(f"[snp-edge] {name}", file=sys.stderr, flush=True)


def targets_of(args: argparse.Namespace, default_preset: str | None = None) -> list[tuple[str, object]]:
    """The pruning targets given: ``[("preset", "deit_s_1.3g"), ("target_gmacs", 2.0), ...]``."""
    def listed(value):
        return value if isinstance(value, list) else ([] if value is None else [value])

    found = [(key, v) for key in TARGET_KEYS for v in listed(getattr(args, key, None))]
    if not found and default_preset:
        found = [("preset", default_preset)]
    return found


def check_references(names: list[str]) -> None:
    """Refuse reference names that are not timm models before any model is loaded."""
    import timm

    from ..errors import SnpEdgeError

    known = set(timm.list_models())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SnpEdgeError(f"--references: unknown timm model {unknown[0]!r} (try deit_tiny_patch16_224)")


def build_members(args: argparse.Namespace, targets: list[tuple[str, object]]) -> list[Member]:
    """The unpruned model, one pruned model per target, then the references (with the same --model-arg)."""
    from ..models import load_model
    from ..vit import parse_model_args

    model_args = parse_model_args(args.model_arg)
    groups.resolve_round_to(args)
    check_references(args.references)
    _stage(f"loading {args.model} (weights: {args.weights})")
    base = load_model(args.model, args.weights, model_args)
    if base.notice:
        print(f"NOTICE: {base.notice}", file=sys.stderr)
    members = [Member(base, "unpruned", args.model)]
    for key, value in targets:
        unit = {"target_gmacs": " GMACs", "target_latency": " ms", "target_speedup": "x"}.get(key)
        tag = f"{value:g}{unit}" if unit else (Path(value).name if key == "config" else str(value))
        tag += f", round-to {args.round_to}" if (args.round_to or 1) > 1 else ""
        _stage(f"pruning to {tag}")
        result = prune_from_args(args, model=base, **{key: value})
        members.append(Member(result.handle, "pruned", f"{args.model} + SNP ({tag})", tag, result))
    for ref in args.references:
        if ref != args.model:
            members.append(Member(load_model(ref, args.weights, model_args), "reference", ref))
    return members


def _candidate(member: Member, path: Path | None = None):
    from ..bench.candidates import Candidate, from_handle, predicted_extra

    h = member.handle
    predicted = predicted_extra(member.prune_result.summary) if member.prune_result else {}
    if path is None:
        return from_handle(h, member.label if member.role != "pruned" else f"{member.role} {member.tag}",
                           role=member.role, label=member.label, extra={"preset": member.tag, **predicted})
    return Candidate(label=member.label, source=str(path), kind="onnx", role=member.role, handle=h, path=path,
                     gmacs=h.gmacs, params=h.params, accuracy_meaningful=h.accuracy_meaningful, notice=h.notice,
                     extra={"base_model": h.base_model, "preset": member.tag, **predicted})


def cmd_compare(args: argparse.Namespace) -> int:
    from ..bench.report import check_out_dir
    from ..errors import SnpEdgeError

    log_to_stderr("compare")
    targets = targets_of(args)
    if not targets:
        raise SnpEdgeError("give at least one --preset, --config, --target-gmacs, --target-latency or "
                           "--target-speedup to compare against")
    cfg = bench_config(args)
    check_int8_bench(args)
    out = args.out or default_out("compare")
    check_out_dir(out, args.force)
    members = build_members(args, targets)
    cands = [_candidate(m) for m in members]
    if args.precision != "int8":
        apply_top1(cands, args.top1)
        return measure_and_write(cands, cfg, out, args.force)
    import tempfile

    from ..export.onnx_export import export_onnx

    with tempfile.TemporaryDirectory(prefix="snp-edge-compare-int8-") as tmp:
        exports = []
        for i, (m, c) in enumerate(zip(members, cands, strict=True)):
            path = Path(tmp) / f"model{i}.onnx"
            exports.append((c, path, export_onnx(m.handle, path, verify=False)))
        cands = int8_rows(exports, None, Path(tmp))
        apply_top1(cands, args.top1)
        return measure_and_write(cands, cfg, out, args.force)


def check_int8_bench(args: argparse.Namespace) -> None:
    """``--precision int8`` benchmarks ONNX Runtime's CPU int8 kernels: refuse other backends and devices,
    and (run) bundle targets without INT8, before any model loads."""
    from ..errors import SnpEdgeError
    from ..export.int8_bundle import check_int8

    if args.precision == "fp16":
        raise SnpEdgeError("--precision fp16: the benchmark's FP16 is --fp16 (torch on cuda); --precision takes "
                           "fp32 or int8 here")
    if args.precision != "int8":
        return
    if args.backend not in ("ort", "none") or args.device != "cpu":
        raise SnpEdgeError(f"--precision int8 times ONNX Runtime's CPU int8 kernels: use --backend ort --device cpu "
                           f"(not --backend {args.backend} --device {args.device})")
    for target in getattr(args, "targets", None) or []:
        check_int8(target, "int8")


def int8_rows(exports: list, images, tmp: Path) -> list:
    """The benchmark candidates of ``exports`` ((candidate, FP32 ONNX path, export result) each), every FP32
    row followed by its INT8 twin (bench/int8_candidates.py), quantised on ``images`` (torch, the model's
    input; seeded noise when None) into ``tmp``."""
    from ..bench.int8_candidates import int8_candidate, noise_calibration, with_int8

    _stage("quantising to INT8 (ONNX Runtime's Q/DQ placement) for the INT8 rows")
    twins = []
    for c, path, result in exports:
        if images is None:
            calib = noise_calibration((1, c.handle.in_chans, c.handle.img_size, c.handle.img_size))
        else:
            cfg = c.handle.data_config
            calib = result.input_form.encode(images, cfg["mean"], cfg["std"]) if result.input_form else images
            calib = calib.numpy() if hasattr(calib, "numpy") else calib
        twins.append(int8_candidate(c, path, tmp / f"{path.stem}.int8.onnx", calib,
                                    gate=images is not None and bool(c.accuracy_meaningful)))
    return with_int8([c for c, _, _ in exports], twins)


def cmd_run(args: argparse.Namespace) -> int:
    from ..bench.report import markdown, write_report
    from ..bench.run import run_bench
    from ..calib import load_calibration
    from ..engines.common.fileio import Output
    from ..export.bundle import make_bundle
    from ..export.onnx_export import export_onnx
    from ..saved import write_pruned

    targets = targets_of(args, DEFAULT_PRESET)
    check_int8_bench(args)
    cfg = bench_config(args, protocol="run") if args.backend != "none" else None
    out = Path(args.out or Path("runs") / f"run-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.out is None:
        out.parent.mkdir(parents=True, exist_ok=True)
    with Output(out, args.force, kind="dir") as output:
        tmp = Path(output.stage())
        members = build_members(args, targets)
        base, pruned = members[0], members[1]
        (tmp / "pruned").mkdir()
        write_pruned(pruned.handle, tmp / "pruned", extra={"summary": pruned.prune_result.summary,
                                                            "pruning": pruned.prune_result.recipe})
        images = load_calibration(args.calib, 8, base.handle.data_config, args.seed).images if args.calib else None
        _stage("exporting ONNX (verified against PyTorch with ONNX Runtime)")
        (tmp / "onnx").mkdir()
        exports = []
        for m in members:
            path = tmp / "onnx" / f"{'pruned' if m.role == 'pruned' else m.handle.base_model}.onnx"
            exports.append((m, path, export_onnx(m.handle, path, images=images)))
        bundles = {}
        for target in args.targets:
            _stage(f"bundling for {target}")
            (tmp / "bundles").mkdir(exist_ok=True)
            bundles[target] = str(make_bundle(pruned.handle, target, tmp / "bundles" / target, images=images,
                                              **_int8_bundle(args, pruned.handle)).relative_to(tmp))
        bench_doc = None
        if cfg is not None:
            _stage(f"benchmarking on {cfg.backend} (warm-up {cfg.warmup}, runs {cfg.runs}, interleaved)")
            cands = [_candidate(m, path if cfg.backend == "ort" else None) for m, path, _ in exports]
            if args.precision == "int8":
                cands = int8_rows([(c, p, r) for c, (_, p, r) in zip(cands, exports, strict=True)], images,
                                  tmp / "onnx")
            apply_top1(cands, args.top1)
            bench_doc = run_bench(cands, cfg, command=sys.argv)
            write_report(bench_doc, tmp / "bench")
        summary = {
            "model": args.model, "weights": base.handle.weights, "accuracy_meaningful": base.handle.accuracy_meaningful,
            "notice": pruned.handle.notice, "prune": pruned.prune_result.summary, "pruning": pruned.prune_result.recipe,
            "onnx": {m.label: {"file": str(p.relative_to(tmp)), "parity": [x.to_dict() for x in r.parity]}
                     for m, p, r in exports},
            "bundles": bundles,
            "bench": "bench/results.json" if bench_doc else None,
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        output.publish()
    if bench_doc is not None:
        print(markdown(bench_doc))
    print(f"wrote {out}/ (pruned/, onnx/, {'bundles/, ' if bundles else ''}{'bench/, ' if bench_doc else ''}"
          "summary.json)")
    if pruned.handle.notice:
        print(f"NOTICE: {pruned.handle.notice}")
    return 130 if bench_doc is not None and bench_doc.get("partial") else 0


def _int8_bundle(args: argparse.Namespace, handle) -> dict:
    """make_bundle's precision arguments for ``run --precision int8`` (the gate off for random weights)."""
    if args.precision != "int8":
        return {}
    from ..export.int8_bundle import Int8Options

    return {"precision": "int8", "int8": Int8Options(gate=bool(handle.accuracy_meaningful and args.calib))}


def precision_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=groups.PRECISIONS, default="fp32",
                   help="fp32 (fp16: use --fp16, torch on cuda); int8: also quantise every model (ONNX Runtime's "
                        "Q/DQ placement, the CPU targets') and benchmark its INT8 row beside the FP32 one (--backend "
                        "ort, CPU); run's bundles are INT8 (targets without INT8, such as jetson-nano, are refused)")


def register(sub) -> None:
    p = sub.add_parser("run", help="the main job: prune -> export -> bundle -> bench (default DeiT-S, 1.3 GMACs)",
                       description=__doc__, formatter_class=groups.formatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="timm model name")
    groups.model(p)
    groups.prune_target(p, required=False)
    groups.scoring(p)
    groups.references(p, DEFAULT_REFERENCES)
    groups.device_target(p, multiple=True, default=list(DEFAULT_TARGETS))
    groups.measurement(p, protocol="run", backends=(*groups.BACKENDS[:2], "none"))
    precision_flag(p)
    groups.seed(p)
    groups.output(p, "output folder (default: runs/run-<time>)", required=False, json_flag=False)
    groups.advanced(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="unpruned vs SNP-pruned vs reference models, benchmarked together",
                       formatter_class=groups.formatter,
                       description="Prune --model to each --preset / --config / --target-gmacs, then benchmark the "
                                   "unpruned model, its SNP versions and the reference models in one interleaved "
                                   "run; results.json/.md/.png go to --out.")
    p.add_argument("--model", required=True, help="timm model name, e.g. deit_small_patch16_224")
    groups.model(p)
    groups.prune_target(p, multiple=True)
    groups.scoring(p)
    groups.references(p, DEFAULT_REFERENCES)
    groups.device_target(p, purpose="the device the widths are aligned for (--round-to's default)")
    groups.measurement(p, backends=groups.BACKENDS[:2])
    precision_flag(p)
    groups.seed(p)
    groups.output(p, "output folder (default: runs/compare-<time>)", required=False, json_flag=False)
    groups.advanced(p)
    p.set_defaults(func=cmd_compare)
