"""Every flag of ``snp-edge`` and ``python3 -m engines`` is reached by a test: a flag string (hidden aliases
included) that appears in no test file fails here, unless :data:`ALLOWED` says why it cannot run here. Below
the walk, the cheap tests (parse + effect) of the flags the walk found untested."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest
from snp_edge.engines import cli as device_cli

from snp_edge.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
# flag -> why no test runs it here (kept short: everything else is parsed and its effect checked)
ALLOWED: dict[str, str] = {}


def _option_counts():
    spec = importlib.util.spec_from_file_location("option_counts", REPO / "benchmarks" / "option_counts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flags() -> dict[str, list[str]]:
    """flag string -> the commands that take it."""
    oc, found = _option_counts(), {}
    for prog, parser in oc.parsers().items():
        for path, p in oc.commands(parser):
            for action in p._actions:
                if not isinstance(action, argparse._HelpAction):
                    for flag in action.option_strings:
                        found.setdefault(flag, []).append(f"{prog} {path}".strip())
    return found


def test_every_flag_appears_in_a_test():
    text = "\n".join(p.read_text() for p in (REPO / "tests").rglob("*.py") if p.name != Path(__file__).name)
    text += "\n" + "\n".join(re.findall(r'"(--[\w-]+)"', Path(__file__).read_text().split("# ---- effects")[-1]))
    missing = {flag: where[:3] for flag, where in _flags().items()
               if flag not in ALLOWED and not re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", text)}
    assert missing == {}, f"{len(missing)} flags in no test: {missing}"
    assert set(ALLOWED) <= set(_flags()), "ALLOWED names a flag no command has"


def test_the_walk_sees_every_command_and_hidden_aliases():
    flags = _flags()
    assert {"--round-to", "--criterion-for", "--max-perf", "--dla-core"} <= set(flags)
    assert "python3 -m engines info" in flags["--target"]  # hidden there, still accepted (one release)


# ---- effects (parse + what the flag changes) ------------------------------------------------------------------

def _device(*argv):
    return device_cli.build_parser().parse_args(list(argv))


def _host(*argv):
    return build_parser().parse_args(list(argv))


def test_engine_flags_reach_the_engine_options():
    """--engine, --fp32-norms, --fp32-softmax: the one options object carries them (the label names the pins)."""
    from snp_edge.engines.options import EngineArgs

    from tests.engines.device_fixtures import manifest_dict

    for command in ("build", "verify", "bench", "classify", "deploy", "trtexec-cmd"):
        args = _device(command, "B", "--engine", "e.engine", "--fp32-norms", "--fp32-softmax", "--precision", "fp16",
                       *(["x.jpg"] if command == "classify" else []))
        options = EngineArgs.parse(args, manifest_dict())
        assert (options.engine, options.fp32_norms, options.fp32_softmax) == ("e.engine", True, True), command
        assert options.label != EngineArgs.parse(_device(command, "B", *(["x.jpg"] if command == "classify" else [])),
                                                 manifest_dict()).label
    assert _device("build", "B", "--verbose").verbose is True and _device("build", "B").verbose is False


def test_classify_honours_target_batches_workspace_and_timing_cache():
    """classify builds the same EngineOptions as build: --target, --min/opt/max-batch, --workspace-mib and
    --timing-cache reach it (they were dropped before)."""
    from snp_edge.engines.options import EngineArgs

    from tests.engines.device_fixtures import manifest_dict

    args = _device("classify", "B", "x.jpg", "--target", "rtx3090", "--min-batch", "2", "--opt-batch", "4",
                   "--max-batch", "8", "--workspace-mib", "512", "--timing-cache", "t.cache")
    options = EngineArgs.parse(args, manifest_dict(target="jetson-nano"))
    assert [options.profile.min_shape[0], options.profile.opt_shape[0], options.profile.max_shape[0]] == [2, 4, 8]
    assert options.profile.workspace_bytes == 512 << 20 and options.timing_cache == "t.cache"
    default = EngineArgs.parse(_device("classify", "B", "x.jpg", "--target", "rtx3090"), manifest_dict())
    assert default.profile.opt_shape[0] == 64  # the RTX 3090's profile, not the manifest's Nano


def test_info_and_power_mode_show_only_their_flags_and_accept_the_old_ones(capsys):
    """info and power-mode no longer list the 12 engine flags they ignore; old command lines still parse."""
    parser = device_cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    info_help, power_help = sub["info"].format_help(), sub["power-mode"].format_help()
    for flag in ("--target", "--max-batch", "--precision", "--dla-core", "--engine", "--verbose"):
        assert flag not in info_help and flag not in power_help, flag
    assert "--cache-dir" in info_help and "--max-perf" in power_help and "--json" in info_help
    assert _device("info", "B", "--target", "jetson-nano", "--precision", "fp32").target == "jetson-nano"
    assert _device("power-mode", "--max-batch", "4", "--max-perf").max_perf is True


def test_verify_and_classify_thresholds():
    from snp_edge.engines.classify import StreamFilter
    from snp_edge.engines.verify import tolerance_for

    args = _device("verify", "B", "--prob-atol", "0.05")
    assert tolerance_for("fp16", args.atol_frac, args.min_top1, args.prob_atol).prob_atol == 0.05
    args = _device("classify", "B", "x.jpg", "--threshold", "0.3")
    kept = StreamFilter(args.smoothing, args.threshold).keep([(1, 0.6, "a"), (2, 0.2, "b")])
    assert kept == [(1, 0.6, "a")]


def test_profile_time_budget_and_passes():
    args = _device("profile", "plan.json", "--out", "t.json", "--time-budget", "30")
    assert args.time_budget == 30.0
    with pytest.raises(SystemExit):
        _device("profile", "plan.json", "--out", "t.json", "--time-budget", "0")
    args = _host("profile", "--model", "deit_tiny_patch16_224", "--out", "t.json", "--passes", "3",
                 "--time-budget", "60")
    assert (args.passes, args.time_budget) == (3, 60.0)


def test_finetune_flags_reach_the_config():
    from snp_edge.cli.train import config_from_args

    for command in ("finetune", "prune-iterative"):
        extra = ["--target-gmacs", "2"] if command == "prune-iterative" else []
        args = _host(command, "m", "--data", "d", "--out", "o", "--accum-steps", "3", "--min-lr", "1e-6", "--warmup-lr", "1e-7",
                     "--weight-decay", "0.01", "--clip-grad", "1.5", "--mixup-switch-prob", "0.25", "--scale", "0.5,1",
                     "--ratio", "0.7,1.3", "--hflip", "0.2", "--color-jitter", "0.3", "--distill", "hard",
                     "--distill-alpha", "0.7", "--distill-tau", "2", "--amp", "off", "--teacher-weights", "random",
                     *extra)
        cfg = config_from_args(args, args.distill)
        assert (cfg.accum_steps, cfg.min_lr, cfg.warmup_lr, cfg.weight_decay, cfg.clip_grad) == \
            (3, 1e-6, 1e-7, 0.01, 1.5), command
        assert (cfg.mixup_switch_prob, cfg.aug.scale, cfg.aug.ratio, cfg.aug.hflip, cfg.aug.color_jitter) == \
            (0.25, (0.5, 1.0), (0.7, 1.3), 0.2, 0.3), command
        assert (cfg.distill, cfg.distill_alpha, cfg.distill_tau, cfg.amp) == ("hard", 0.7, 2.0, "off"), command
        assert args.teacher_weights == "random"


def test_iterative_spacing_and_calibration_batch():
    args = _host("prune-iterative", "m", "--data", "d", "--out", "o", "--target-gmacs", "2", "--spacing", "linear",
                 "--calib-batch-size", "8")
    assert (args.spacing, args.calib_batch_size) == ("linear", 8)


def test_scoring_flags_reach_the_prune_spec():
    """--allocation, --ffn-score and the hidden --criterion-v/-mlp/-embed aliases land in PruneSpec.scoring."""
    from snp_edge.cli import args as groups

    args = _host("prune", "--model", "deit_tiny_patch16_224", "--weights", "random", "--target-gmacs", "0.5",
                 "--out", "o", "--allocation", "uniform", "--ffn-score", "act", "--criterion-v", "l1",
                 "--criterion-mlp", "l2", "--criterion-embed", "l1")
    spec = groups.prune_spec(args)
    assert spec.scoring.allocation == "uniform" and spec.scoring.ffn_score == "act"
    assert (spec.scoring.criteria["v"], spec.scoring.criteria["mlp"], spec.scoring.criteria["embed"]) == \
        ("l1", "l2", "l1")


def test_bench_block_export_and_eval_flags():
    from snp_edge.cli.bench import bench_config

    cfg = bench_config(_host("bench", "m", "--block", "5", "--runs", "20"))
    assert cfg.block == 5
    args = _host("bundle", "m", "--target", "jetson-nano", "--out", "o", "--fp16-safe")
    assert args.fp16_safe is True
    args = _host("quantize", "m", "--target", "raspberry-pi-5", "--out", "o", "--calib", "c", "--no-int8-gate")
    assert args.no_int8_gate is True
    args = _host("eval", "m", "--data", "d", "--attention-fidelity", "--fidelity-model", "deit_tiny_patch16_224",
                 "--fidelity-weights", "random")
    assert (args.fidelity_model, args.fidelity_weights) == ("deit_tiny_patch16_224", "random")
