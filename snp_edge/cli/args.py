"""Reusable argument groups of the ``snp-edge`` command line (in the manner of Polygraphy's ``tools/args``).

One group per concept, added to every subcommand that needs it, so a flag means the same thing everywhere
and shows its default in ``--help``. Each group module imports nothing heavy: building the parser (``--help``,
``--version``) never imports torch, timm or onnx. Numeric options are range-checked by argparse, before any
work starts.

=====================  ===========================================================================
group                  flags
=====================  ===========================================================================
:func:`model`          ``--model-arg KEY=VALUE``, ``--weights``
:func:`prune_target`   ``--preset`` / ``--config`` / ``--target-gmacs`` / ``--target-latency`` /
                       ``--target-speedup`` (one, or several for compare), ``--latency-table``
:func:`scoring`        ``--calib``, ``--calib-images``, ``--heads``, ``--drop-blocks``, ``--round-to``,
                       ``--batch-size``
:func:`advanced`       the research knobs, shown last: ``--criterion``, ``--criterion-for COMP=CRIT``,
                       ``--snp-gamma``, ``--ffn-score``, ``--embed-score``, ``--rescore``, ``--allocation``,
                       ``--group-weight``
:func:`seed`           ``--seed``: every random choice the command makes
:func:`measurement`    ``--backend``, ``--device``, ``--batch``, ``--warmup``, ``--runs``, ``--quick``, ...
:func:`device_target`  ``--target`` (a device from :mod:`snp_edge.engines.common.targets`)
:func:`output`         ``--out``, ``--force``, ``--json``
=====================  ===========================================================================

:func:`prune_spec` parses the model, target, scoring, advanced and device-target groups into one
:class:`~snp_edge.spec.PruneSpec`, once per command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..criteria import COMPONENTS, CRITERIA, DEFAULT_EMBED_SCORE, EMBED_SCORES, FFN_SCORES
from ..engines.common.argtypes import (
    NONNEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    DefaultsFormatter,
    float_range,
    hidden_alias,
    int_range,
)
from ..engines.common.stats import PROTOCOLS
from ..engines.common.targets import TARGETS
from ..presets import list_presets
from ..spec import TARGET_KEYS, Alignment, Calibration, PruneSpec, Scoring, Target, device_multiple

BACKENDS = ("ort", "torch", "trt")  # snp_edge.bench.backends.BACKENDS (checked in the tests)
ALLOCATIONS = ("score", "uniform")  # snp_edge.allocation.ALLOCATORS (checked in the tests; no torch here)
DEFAULT_ALLOCATION = Scoring.allocation  # "score": snp_edge.spec, the one default (no torch)
GROUP_WEIGHTS = ("auto", "macs", "loss", "fisher")  # "auto" + snp_edge.allocation.GROUP_WEIGHTS (checked in the tests)
DEFAULT_GROUP_WEIGHT = Scoring.group_weight  # "fisher": snp_edge.spec, the one default
WEIGHTS_HELP = ("pretrained | random | auto (pretrained when they load, else random with a notice in every "
                "output) | PATH to a timm state_dict or checkpoint (.pth/.pt/.safetensors)")
MAX_IMAGES = 1_000_000  # calibration/parity images: far above any use, far below an allocation accident


def formatter(prog: str) -> DefaultsFormatter:
    return DefaultsFormatter(prog, max_help_position=32, width=110)


def model(p: argparse.ArgumentParser, weights_default: str = "auto") -> None:
    """--model-arg / --weights: how a timm model is built and where its weights come from."""
    g = p.add_argument_group("model")
    g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="override passed to timm.create_model (img_size, patch_size, embed_dim, depth, num_heads, "
                        "num_classes, in_chans, mlp_ratio); repeatable; applies to every timm model the command "
                        "builds")
    g.add_argument("--weights", default=weights_default, metavar="W", help=WEIGHTS_HELP)


def prune_target(p: argparse.ArgumentParser, required: bool = True, multiple: bool = False) -> None:
    """What widths to prune to: exactly one of --preset / --config / --target-gmacs / --target-latency /
    --target-speedup (``multiple``: any number of each, one pruned model per value, as ``compare`` does)."""
    g = p.add_argument_group("pruning target" + (" (repeatable: one pruned model each)" if multiple else ""))
    target = g if multiple else g.add_mutually_exclusive_group(required=required)
    extra = {"action": "append", "default": []} if multiple else {}
    target.add_argument("--preset", choices=list_presets(), metavar="NAME",
                        help="built-in configuration: " + ", ".join(list_presets()), **extra)
    target.add_argument("--config", type=Path, metavar="FILE", help="YAML/JSON file of kept widths or ratios per layer",
                        **extra)
    target.add_argument("--target-gmacs", type=float_range(0.0, 1e6, lo_open=True), metavar="X",
                        help="find widths that reach X GMACs (within 2%%, never above)", **extra)
    target.add_argument("--target-latency", type=float_range(0.0, 1e7, lo_open=True), metavar="MS",
                        help="find widths whose latency predicted by --latency-table is MS ms (within 2%%, never "
                             "above)", **extra)
    target.add_argument("--target-speedup", type=float_range(1.0, 1e4), metavar="X",
                        help="find widths predicted X times faster than the unpruned model by --latency-table",
                        **extra)
    g.add_argument("--latency-table", type=Path, metavar="FILE",
                   help="latency table (snp-edge profile, or python3 -m engines profile on a device) for "
                        "--target-latency / --target-speedup; with any target, the summary adds the predicted "
                        "latency")


def scoring(p: argparse.ArgumentParser, calib_images: int = 64) -> None:
    """Calibration data and structure: which images score the neurons, heads and blocks kept, rounding. The
    research knobs are :func:`advanced`, added last so --help shows the deployer's flags first."""
    g = p.add_argument_group("calibration and structure")
    g.add_argument("--calib", metavar="SRC",
                   help="calibration images: an image folder (ImageFolder or flat) or an .npy array (N,C,H,W "
                        "float32, preprocessed); none: seeded noise, with a notice in every output")
    g.add_argument("--calib-images", type=int_range(1, MAX_IMAGES), default=calib_images, metavar="N",
                   help="calibration images used")
    g.add_argument("--heads", type=POSITIVE_INT, metavar="H", help="keep H heads per block (head pruning)")
    g.add_argument("--drop-blocks", type=NONNEGATIVE_INT, default=0, metavar="K",
                   help="also remove the K least important blocks (chosen before the widths of a budget)")
    g.add_argument("--round-to", type=int_range(1, 4096), metavar="N",
                   help="round every pruned width to the nearest multiple of N (hardware alignment), then fit "
                        "back under the target's MACs (default: what the device --target(s) want: 8 for FP16 "
                        "tensor cores; with --target-latency/--target-speedup the latency table's grid alignment, "
                        "8 for DeiT: the table measured aligned widths only; otherwise 1)")
    g.add_argument("--batch-size", type=int_range(1, 4096), default=16, metavar="B",
                   help="calibration images per forward pass")


def criterion_for(text: str) -> tuple[str, str]:
    """``COMP=CRIT`` -> (component, criterion), both checked (argparse type of --criterion-for)."""
    comp, sep, crit = text.partition("=")
    if not sep or comp not in COMPONENTS or crit not in CRITERIA:
        raise argparse.ArgumentTypeError(f"expected COMP=CRIT with COMP one of {', '.join(COMPONENTS)} and CRIT "
                                         f"one of {', '.join(CRITERIA)}, got {text!r}")
    return comp, crit


class _OldCriterionFlag(argparse.Action):
    """``--criterion-COMP CRIT``, the old spelling of ``--criterion-for COMP=CRIT`` (hidden, for one release)."""

    def __call__(self, parser, namespace, values, option_string=None):
        comp = option_string.removeprefix("--criterion-")
        print(f"note: {option_string} {values} is now --criterion-for {comp}={values}", file=sys.stderr)
        namespace.criterion_for = [*(namespace.criterion_for or []), (comp, values)]


def advanced(p: argparse.ArgumentParser) -> None:
    """The research knobs: criteria, the SNP criterion's free parameters, how a budget becomes widths. Their
    defaults are the options that measured best (docs/accuracy.md); a deployer never needs them."""
    g = p.add_argument_group("advanced: scoring and allocation (research knobs; the defaults measured best)")
    g.add_argument("--criterion", choices=CRITERIA,
                   help="criterion for every component (default: snp, with the data-driven value score snp-data "
                        "that measured best, docs/accuracy.md; `--criterion snp` is the paper's, literally)")
    g.add_argument("--criterion-for", type=criterion_for, action="append", default=[], metavar="COMP=CRIT",
                   help=f"criterion for one component ({', '.join(COMPONENTS)}), over --criterion's; repeatable")
    for comp in COMPONENTS:
        g.add_argument(f"--criterion-{comp}", choices=CRITERIA, action=_OldCriterionFlag, dest="criterion_for",
                       help=argparse.SUPPRESS)
    g.add_argument("--snp-gamma", type=int_range(1, 4096), default=8, metavar="G",
                   help="singular triplets of S^h used by the snp Q/K score")
    g.add_argument("--ffn-score", choices=FFN_SCORES, default="act", help="FFN base score under snp")
    g.add_argument("--embed-score", choices=EMBED_SCORES, default=DEFAULT_EMBED_SCORE,
                   help="per-layer base score of residual channels under snp (kl: channels removed in chunks "
                        "on a second-order estimate of the output's KL divergence, re-estimated after each chunk)")
    g.add_argument("--rescore", action="store_true",
                   help="score the query/key, value and FFN neurons again after the residual width is cut (on "
                        "the narrower model) before choosing which stay")
    g.add_argument("--allocation", choices=ALLOCATIONS, default=DEFAULT_ALLOCATION,
                   help="how a budget (--target-gmacs/-latency/-speedup) becomes widths: score = neurons ranked "
                        "globally by normalised importance per unit of cost; uniform = one kept fraction per "
                        "component (the older search)")
    g.add_argument("--group-weight", choices=GROUP_WEIGHTS, default=DEFAULT_GROUP_WEIGHT,
                   help="what the score allocation takes a layer's neurons to be worth against other layers': "
                        "macs = the compute they do; loss = measured: each layer cut alone to 7/8, 3/4, 1/2, 1/4 "
                        "and its smallest width, the KL divergence of the predictions on the calibration images, "
                        "the layers probed again after the residual cut; fisher (default) = the same losses "
                        "estimated from one Fisher pass, calibrated by a few probes, the smallest widths probed; "
                        "auto = fisher")
    g.add_argument("--keep-sublayers", action="store_true",
                   help="never cut an FFN or an attention to zero width (by default, with measured group weights, "
                        "one is removed as a whole where the measured loss says it is free: docs/sublayers.md)")


def criteria_of(args: argparse.Namespace) -> dict[str, str]:
    """Criterion per component: --criterion-for COMP=CRIT, else --criterion, else the default."""
    from ..criteria import DEFAULT_CRITERIA

    chosen = dict(getattr(args, "criterion_for", None) or [])
    return {c: chosen.get(c) or args.criterion or DEFAULT_CRITERIA[c] for c in DEFAULT_CRITERIA}


def prune_spec(args: argparse.Namespace, **target) -> PruneSpec:
    """The :class:`~snp_edge.spec.PruneSpec` of a command's model, target, scoring, advanced and device-target
    options, parsed once; the target from ``args`` unless one of :data:`~snp_edge.spec.TARGET_KEYS` is given
    (``compare`` passes each of its targets in turn). Call after :func:`resolve_round_to`."""
    from ..vit import parse_model_args

    if not any(v is not None for v in target.values()):
        target = {k: getattr(args, k, None) for k in TARGET_KEYS}
    return PruneSpec(
        args.model, args.weights, parse_model_args(args.model_arg),
        Target(**target, latency_table=getattr(args, "latency_table", None)),
        Calibration(args.calib, args.calib_images, args.seed, args.batch_size),
        Scoring(criteria_of(args), args.snp_gamma, args.ffn_score, args.embed_score, args.rescore, args.allocation,
                args.group_weight, not getattr(args, "keep_sublayers", False)),
        Alignment(args.heads, args.drop_blocks, args.round_to, tuple(_device_targets(args))))


def _device_targets(args: argparse.Namespace) -> list[str]:
    return list(getattr(args, "targets", None) or []) or ([args.target] if getattr(args, "target", None) else [])


def resolve_round_to(args: argparse.Namespace) -> int | None:
    """``args.round_to``, set once from the device targets when not given (:func:`width_multiple_for` of
    ``--target`` / ``--targets``), with a note on stderr when that rounds the widths. None when neither
    gives one: :func:`snp_edge.api.prune` then steps by the latency table's alignment for a latency target
    and keeps exact widths otherwise."""
    if args.round_to is None:
        names = _device_targets(args)
        multiple = device_multiple(names)  # the rule itself: snp_edge.spec.round_to_for
        if multiple > 1:
            args.round_to = multiple
            print(f"note: widths rounded to multiples of {args.round_to} for {', '.join(names)} (FP16 tensor cores); "
                  "--round-to 1 keeps the exact widths", file=sys.stderr)
    return args.round_to


def seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=SEED, default=0,
                   help="seed of every random choice the command makes (calibration sample, random scores, "
                        "benchmark order and inputs, training)")


def measurement(p: argparse.ArgumentParser, protocol: str = "paper", backends: tuple[str, ...] = BACKENDS) -> None:
    """How latency is measured (interleaved, warm-up then timed runs)."""
    counts = PROTOCOLS[protocol]
    g = p.add_argument_group("measurement")
    words = {"ort": "ort (ONNX Runtime)", "torch": "torch (PyTorch eager)", "trt": "trt (TensorRT engines)",
             "none": "none (no benchmark)"}
    g.add_argument("--backend", default="ort", choices=backends, help=", ".join(words[b] for b in backends))
    g.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where ort/torch run")
    g.add_argument("--fp16", action="store_true", help="half precision (torch on cuda only)")
    g.add_argument("--batch", type=int_range(1, 65536), default=1, metavar="N",
                   help="images per timed run (paper: 1 on edge, 64 on GPU)")
    g.add_argument("--warmup", type=NONNEGATIVE_INT, metavar="N",
                   help=f"untimed runs per model (default: {counts['warmup']}; --quick {PROTOCOLS['quick']['warmup']})")
    g.add_argument("--runs", type=int_range(1, 10_000_000), metavar="N",
                   help=f"timed runs per model (default: {counts['runs']}; --quick {PROTOCOLS['quick']['runs']}; "
                        f"the paper: {PROTOCOLS['paper']['runs']})")
    g.add_argument("--quick", action="store_true", help="few runs, for smoke tests and CI (not for reporting)")
    g.add_argument("--block", type=POSITIVE_INT, metavar="K", help="timed runs per interleaved block (default: runs/10, "
                                                                   "at most 50)")
    g.add_argument("--threads", type=int_range(1, 1024), metavar="N",
                   help="ONNX Runtime intra-op / torch threads (default: every core this process may use)")
    g.add_argument("--baseline", metavar="NAME_OR_INDEX",
                   help="model the speed-ups are relative to: label, source or 0-based index (default: the first)")
    g.add_argument("--top1", action="append", default=[], metavar="NAME=PCT",
                   help="known top-1 accuracy (%%) of a model, by label or source, for the table and plot; "
                        "repeatable")


def protocol_counts(args: argparse.Namespace, protocol: str = "paper") -> tuple[int, int]:
    """(warm-up runs, timed runs): explicit --warmup/--runs win over --quick, which wins over ``protocol``."""
    counts = PROTOCOLS["quick" if args.quick else protocol]
    return (counts["warmup"] if args.warmup is None else args.warmup,
            counts["runs"] if args.runs is None else args.runs)


def device_target(p: argparse.ArgumentParser, required: bool = False, multiple: bool = False,
                  default: list[str] | None = None, purpose: str = "device target") -> None:
    """--target: a device from the target table (one, or several with ``multiple``)."""
    lines = "; ".join(f"{t.name}: {t.description}" for t in TARGETS.values())
    if multiple:
        p.add_argument("--targets", nargs="*", choices=list(TARGETS), default=default or [], metavar="TARGET",
                       help=f"device bundles to make, and the widths' alignment ({lines}); give the flag alone "
                            "for none")
    else:
        p.add_argument("--target", choices=list(TARGETS), required=required, metavar="TARGET",
                       help=f"{purpose} ({lines})")


QUANTIZERS = ("ort", "modelopt")  # export.quantize.QUANTIZERS (checked in the tests; no onnx import here)
CALIBRATIONS = ("entropy", "percentile", "minmax")  # export.quantize.CALIBRATION_METHODS (checked in the tests)
PRECISIONS = ("fp32", "fp16", "int8")  # --precision of export, bundle, profile


def precision(p: argparse.ArgumentParser, choice: bool = True) -> None:
    """--precision fp16|int8 and how an INT8 model is made (export/quantize.py); ``choice`` False: the INT8
    flags only (``snp-edge quantize``)."""
    g = p.add_argument_group("precision and int8 quantisation")
    if choice:
        g.add_argument("--precision", choices=PRECISIONS, default="fp16",
                       help="fp16 or fp32: a float ONNX (FP16/FP32 engines, FP32 on CPU boards); int8: the target's "
                            "Q/DQ model, post-training quantised on the calibration images and gated against FP32 "
                            "(not jetson-nano)")
    g.add_argument("--quantizer", choices=QUANTIZERS,
                   help="Q/DQ placement: ort (ONNX Runtime int8 kernels: CPU targets) or modelopt (NVIDIA Model "
                        "Optimizer: TensorRT explicit quantisation); default: the target's")
    g.add_argument("--calibration", choices=CALIBRATIONS,
                   help="how activation ranges come from the calibration images (default: minmax, measured best "
                        "in docs/int8.md; percentile: ort only)")
    g.add_argument("--int8-min-top1", type=float_range(0.0, 1.0), default=0.9, metavar="F",
                   help="INT8 gate: top-1 agreement with FP32 on the calibration images at least F")
    g.add_argument("--int8-max-error", type=float_range(0.0, 1e6, lo_open=True), default=0.5, metavar="F",
                   help="INT8 gate: max abs logit error at most F x the largest |FP32 logit|")
    g.add_argument("--no-int8-gate", action="store_true",
                   help="skip the INT8 gate (it is skipped anyway, with a notice, for random-weight models)")


def int8_options(args: argparse.Namespace, accuracy_meaningful: bool = True):
    """The :class:`export.int8_bundle.Int8Options` the --quantizer/--calibration/gate flags select; the gate
    is off for models whose accuracy means nothing (random weights)."""
    from ..export.int8_bundle import Int8Options
    from ..export.quantize import GateThresholds

    gate = not args.no_int8_gate and accuracy_meaningful
    if not args.no_int8_gate and not accuracy_meaningful:
        print("notice: INT8 accuracy gate skipped: random weights give meaningless top-1 agreement",
              file=sys.stderr)
    return Int8Options(args.quantizer, args.calibration, GateThresholds(args.int8_min_top1, args.int8_max_error),
                       gate)


def output(p: argparse.ArgumentParser, what: str, required: bool = True, json_flag: bool = True) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, required=required, metavar="PATH", help=what)
    g.add_argument("--force", action="store_true", help="replace the output if it exists")
    if json_flag:
        g.add_argument("--json", action="store_true",
                       help="print one JSON object as the last line of stdout (human text goes to stderr)")


def references(p: argparse.ArgumentParser, default: tuple[str, ...]) -> None:
    p.add_argument("--references", nargs="*", default=list(default), metavar="NAME",
                   help="unpruned timm models measured beside (give the flag alone for none)")
    hidden_alias(p, "--baseline-models", "--references", nargs="*")


__all__ = ["POSITIVE_FLOAT", "advanced", "criteria_of", "device_target", "formatter", "int8_options", "measurement",
           "model", "output", "precision", "protocol_counts", "prune_spec", "prune_target", "references", "scoring",
           "seed"]
