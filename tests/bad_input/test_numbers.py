"""Numbers nobody checked: every numeric option is range-checked when the command line is parsed (the range in
the message, exit 2, nothing created); sizes that only the machine can judge are checked before allocating
(exit 3); valid but odd values warn and keep the documented behaviour."""

from __future__ import annotations

import json

import pytest

from .conftest import FAST_PRUNE, TINY, TINY_ARGS, assert_one_line_error, snapshot

PARSE_CASES = [
    # (command argv with {out}, message)
    (["prune", *TINY, *FAST_PRUNE, "--batch-size", "0"], "argument --batch-size: 0 is outside [1, 4096]"),
    (["prune", *TINY, *FAST_PRUNE, "--batch-size", "-3"], "argument --batch-size: -3 is outside [1, 4096]"),
    (["prune", *TINY, *FAST_PRUNE, "--calib-images", "100000000"], "--calib-images: 100000000 is outside"),
    (["prune", *TINY, *FAST_PRUNE, "--seed", str(10 ** 23)], "argument --seed: 1" + "0" * 23 + " is outside"),
    (["prune", *TINY, *FAST_PRUNE, "--drop-blocks", "-1"], "argument --drop-blocks: -1 is outside >= 0"),
    (["prune", *TINY, "--target-gmacs", "nan"], "argument --target-gmacs: expected a finite number, got nan"),
    (["prune", *TINY, "--target-gmacs", "inf"], "argument --target-gmacs: expected a finite number, got inf"),
    (["prune", *TINY, "--target-gmacs", "-1"], "argument --target-gmacs: -1 is outside"),
    (["prune", *TINY, "--target-gmacs", "0"], "argument --target-gmacs: 0 is outside"),
    (["prune", *TINY, *FAST_PRUNE, "--round-to", "0"], "argument --round-to: 0 is outside [1, 4096]"),
    (["prune", *TINY, *FAST_PRUNE, "--heads", "0"], "argument --heads: 0 is outside >= 1"),
    (["prune", *TINY, *FAST_PRUNE, "--snp-gamma", "-2"], "argument --snp-gamma: -2 is outside"),
    (["export", "SRC", "--calib-images", "0"], "argument --calib-images: 0 is outside"),
    (["eval", "SRC", "--data", "D", "--batch-size", "0"], "argument --batch-size: 0 is outside"),
    (["eval", "SRC", "--data", "D", "--workers", "-1"], "argument --workers: -1 is outside [0, 256]"),
    (["eval", "SRC", "--data", "D", "--fidelity-images", "0"], "argument --fidelity-images: 0 is outside >= 1"),
    (["eval", "SRC", "--data", "D", "--max-images", "0"], "argument --max-images: 0 is outside >= 1"),
    (["bench", "m.onnx", "--batch", "100000000"], "argument --batch: 100000000 is outside [1, 65536]"),
    (["bench", "m.onnx", "--runs", "-1"], "argument --runs: -1 is outside"),
    (["bench", "m.onnx", "--threads", "0"], "argument --threads: 0 is outside [1, 1024]"),
    (["finetune", "SRC", "--data", "D", "--lr", "nan"], "argument --lr: expected a finite number, got nan"),
    (["finetune", "SRC", "--data", "D", "--lr", "-1"], "argument --lr: -1 is outside > 0"),
    (["finetune", "SRC", "--data", "D", "--epochs", "0"], "argument --epochs: 0 is outside"),
    (["finetune", "SRC", "--data", "D", "--mixup-prob", "2"], "argument --mixup-prob: 2 is outside [0.0, 1.0]"),
    (["run", *TINY, "--batch", "0"], "argument --batch: 0 is outside"),
]


@pytest.mark.parametrize("argv, message", PARSE_CASES, ids=[f"{a[0]}-{m.split(':')[0]}-{i}"
                                                            for i, (a, m) in enumerate(PARSE_CASES)])
def test_parse_time_range(snp, work, argv, message):
    out = work / "out"
    result = snp(*argv, "--out", out)
    assert_one_line_error(result, 2, message, argv[0])
    assert "(see snp-edge" in result.err and snapshot(work) == {}


@pytest.mark.parametrize("argv, message", [
    (["trtexec-cmd", "{bundle}", "--batch", "0"], "argument --batch: 0 is outside [1, 4096]"),
    (["trtexec-cmd", "{bundle}", "--runs", "-1"], "argument --runs: -1 is outside [1, 1000000]"),
    (["bench", "{bundle}", "--warmup", "-5"], "argument --warmup: -5 is outside [0, 100000]"),
    (["verify", "{bundle}", "--atol-frac", "nan"], "argument --atol-frac: expected a finite number, got nan"),
    (["verify", "{bundle}", "--min-top1", "2"], "argument --min-top1: 2 is outside [0.0, 1.0]"),
])
def test_device_parse_time_range(engines, work, argv, message):
    """``python3 -m engines``: the same range types (engines/common/argtypes.py), the same one-line usage errors."""
    result = engines(*[a.format(bundle=work) for a in argv])
    assert_one_line_error(result, 2, message)
    assert snapshot(work) == {}


@pytest.mark.parametrize("arg, message", [
    ("img_size=0", "--model-arg img_size=0 is outside [1, 8192]"),
    ("depth=100000", "--model-arg depth=100000 is outside [1, 1024]"),
    ("mlp_ratio=nan", "--model-arg mlp_ratio=nan is outside"),
    ("num_classes=ten", "--model-arg num_classes='ten' is not a valid int"),
])
def test_model_arg_ranges(snp, work, arg, message):
    result = snp("prune", "--model", "deit_tiny_patch16_224", "--weights", "random", "--model-arg", arg,
                 *FAST_PRUNE, "--out", work / "out")
    assert_one_line_error(result, 2, message, "prune")
    assert snapshot(work) == {}


def test_calibration_images_beyond_memory(snp, work):
    """1,000,000 noise images of 224 px would be 602 GB: refused before allocating (exit 3, memory)."""
    result = snp("prune", "--model", "deit_tiny_patch16_224", "--weights", "random", "--model-arg", "depth=2",
                 "--target-gmacs", "0.1", "--calib-images", "1000000", "--out", work / "out", "--json")
    assert_one_line_error(result, 3, "1000000 calibration images from noise needs 602.1 GB of memory", "prune")
    assert snapshot(work) == {}


@pytest.mark.parametrize("argv, message, status", [
    (["--drop-blocks", "2"], "--drop-blocks 2 would remove every one of the 2 blocks", 2),
    (["--heads", "3"], "--heads 3 is outside 1..2", 2),
])
def test_runtime_structure_numbers(snp, work, argv, message, status):
    result = snp("prune", *TINY, *FAST_PRUNE, *argv, "--out", work / "out", "--json")
    assert_one_line_error(result, status, message, "prune")
    assert snapshot(work) == {}


def test_target_above_the_model_warns_and_keeps_the_documented_behaviour(snp, work):
    """--target-gmacs above the model's own: a one-line warning, and (as documented: "never above") the model
    is kept whole."""
    result = snp("prune", *TINY, "--target-gmacs", "100", "--criterion", "l1", "--out", work / "out", "--json")
    assert result.status == 0, result.err
    warnings = [line for line in result.err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and warnings[0].startswith("snp-edge prune: warning: --target-gmacs 100 is not "
                                                         "below the model's own 0.0076")
    assert warnings[0].endswith("GMACs: nothing is pruned for it")
    summary = json.loads(result.out.strip().splitlines()[-1])
    assert summary["gmacs_after"] == summary["gmacs_before"] and summary["params_after"] == summary["params_before"]


def test_tiny_args_are_what_the_issue_used():
    assert TINY_ARGS[1] == "random" and TINY[1] == "deit_tiny_patch16_224"
