"""The command-line contract: every flag's default shown, help without torch in well under a second, the same
flag meaning the same thing everywhere, invalid values refused before any work, old spellings still accepted."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pytest

from snp_edge.cli import build_parser, main

COMMANDS = ("prune", "info", "presets", "export", "bundle", "bench", "run", "compare", "finetune", "eval")
HEAVY = ("torch", "timm", "onnx", "onnxruntime", "numpy")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_shows_its_default():
    for name, sub in _subparsers(build_parser()).items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or action.dest == "help":
                continue
            shown = formatter._get_help_string(action)
            assert "(default" in shown or shown.endswith("(required)"), f"snp-edge {name} {action.option_strings}"


def test_same_flag_same_meaning():
    """Flags shared between subcommands take the same values and have the same default (or state theirs)."""
    seen: dict[str, tuple] = {}
    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            for flag in action.option_strings:
                if flag in ("-h", "--help", "--out", "--calib-images", "--batch-size", "--model", "--target",
                            "--backend"):
                    continue  # --out/--model/--target say what they name per command; sizes have their own defaults
                key = (action.nargs == 0, tuple(action.choices or ()), getattr(action.type, "__name__", None))
                if flag in seen:
                    assert seen[flag][1] == key, f"{flag} differs between {seen[flag][0]} and {name}"
                else:
                    seen[flag] = (name, key)
    assert seen["--json"][1][0] is True  # a flag everywhere: the last stdout line is JSON
    assert seen["--weights"][1] == (False, (), None)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *[[c, "--help"] for c in COMMANDS]])
def test_help_is_fast_and_imports_nothing_heavy(argv):
    code = ("import sys, time; t = time.perf_counter(); from snp_edge.cli import main; rc = main(sys.argv[1:]); "
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
            "print(rc, round(time.perf_counter() - t, 3), heavy, file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    rc, seconds, heavy = res.stderr.strip().splitlines()[-1].split(" ", 2)
    assert rc == "0" and heavy == "[]", res.stderr
    assert float(seconds) < 1.0, f"{argv}: {seconds} s"


@pytest.mark.parametrize("argv,message", [
    (["run", "--targets", "orin-nano"], "argument --targets: invalid choice: 'orin-nano'"),
    (["run", "--runs", "0"], "argument --runs: 0 is outside [1, 10000000]"),
    (["run", "--target-gmacs", "nan"], "argument --target-gmacs: expected a finite number, got nan"),
    (["prune", "--model", "m", "--preset", "nope", "--out", "x"], "argument --preset: invalid choice: 'nope'"),
    (["prune", "--model", "m", "--target-gmacs", "1", "--batch-size", "0", "--out", "x"], "--batch-size: 0 is outside"),
    (["prune", "--model", "m", "--target-gmacs", "1", "--seed", str(10 ** 23), "--out", "x"], "--seed:"),
    (["bench", "x.onnx", "--batch", "100000000"], "--batch: 100000000 is outside [1, 65536]"),
    (["eval", "m", "--data", "d", "--batch-size", "0"], "--batch-size: 0 is outside"),
    (["finetune", "m", "--data", "d", "--out", "o", "--lr", "nan"], "--lr: expected a finite number"),
])
def test_invalid_values_are_refused_at_parse_time(capsys, argv, message):
    start = time.perf_counter()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert time.perf_counter() - start < 2  # nothing was loaded


def test_unknown_reference_is_refused_before_any_model_is_loaded(capsys, tmp_path):
    start = time.perf_counter()
    code = main(["run", "--references", "not_a_timm_model", "--weights", "random", "--out", str(tmp_path / "r")])
    assert code == 2 and "unknown timm model 'not_a_timm_model'" in capsys.readouterr().err
    assert time.perf_counter() - start < 20 and not (tmp_path / "r").exists()


@pytest.mark.parametrize("old,new,value", [
    (["compare", "--model", "m", "--baseline-models", "a", "b"], "references", ["a", "b"]),
    (["eval", "m", "--data", "d", "--reference", "deit_tiny_patch16_224"], "fidelity_model", "deit_tiny_patch16_224"),
    (["eval", "m", "--data", "d", "--reference-weights", "random"], "fidelity_weights", "random"),
])
def test_old_spellings_still_parse(capsys, old, new, value):
    args = build_parser().parse_args(old)
    assert getattr(args, new) == value
    assert "is now" in capsys.readouterr().err
    assert old[-2 if old[-1] != "b" else -3] not in build_parser().format_help()  # hidden
