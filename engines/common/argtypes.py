"""Command-line building blocks shared by ``snp-edge`` and ``python3 -m engines``: a help formatter that shows
every option's default, numeric types that refuse out-of-range values at parse time (naming the range), and
hidden aliases for renamed flags. Python 3.6-clean."""

import argparse
import math
import sys


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, ``PROG: error: MESSAGE (see PROG --help)``,
    with exit status 2; subcommand parsers inherit it."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to every option's help unless the help already states its default, and
    ``(required)`` to required options."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "(default" in text:
            return text
        if action.required:
            return f"{text} (required)"
        default = action.default
        if action.nargs == 0:  # store_true / store_false / count
            default = "on" if default else "off"
        elif default is None:
            default = "none"
        elif isinstance(default, (list, tuple)):
            default = " ".join(str(d) for d in default) or "none"
        return f"{text} (default: {default})" if text else f"(default: {default})"


def _number(kind, text):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
            from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def int_range(lo=None, hi=None):
    """An argparse type: an integer in [lo, hi] (either bound may be None)."""
    def parse(text):
        value = _number(int, text)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is outside {_range(lo, hi)}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse type: a finite number in the range from ``lo`` to ``hi`` (open ends with ``*_open``)."""
    def parse(text):
        value = _number(float, text)
        bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
        bad_hi = hi is not None and (value >= hi if hi_open else value > hi)
        if bad_lo or bad_hi:
            raise argparse.ArgumentTypeError(f"{value:g} is outside {_range(lo, hi, lo_open, hi_open)}")
        return value

    parse.__name__ = "number"
    return parse


def _range(lo, hi, lo_open=False, hi_open=False):
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}" if isinstance(lo, float) else f"{'>' if lo_open else '>='} {lo}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {hi}"
    return f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


POSITIVE_INT = int_range(1)
NONNEGATIVE_INT = int_range(0)
SEED = int_range(0, 2 ** 63 - 1)
POSITIVE_FLOAT = float_range(0.0, lo_open=True)
NONNEGATIVE_FLOAT = float_range(0.0)
FRACTION = float_range(0.0, 1.0)

# upper bounds of the device side's numeric options (python3 -m engines): nothing a user types runs for days
# or sizes an allocation past any device's memory
BATCH = int_range(1, 4096)              # images per run / profile batch sizes
RUNS = int_range(1, 1000000)            # timed runs per batch size
WARMUP = int_range(0, 100000)           # untimed runs per batch size
WORKSPACE_MIB = int_range(1, 1 << 20)   # builder workspace, MiB (1 TiB)
DLA_CORE = int_range(0, 15)
TELEMETRY_MS = int_range(0, 60000)      # sampling interval, ms
THREADS = int_range(1, 1024)
TOP_K = int_range(1, 100000)
FRAME_COUNT = int_range(1, 10 ** 9)   # --every, --max-frames: frames of a video or stream
SMOOTHING = float_range(0.0, 1.0, hi_open=True)  # exponential smoothing factor, [0, 1)
WARMUP_MS = float_range(0.0, 3600000.0)  # trtexec warm-up, ms (one hour)
TOLERANCE = float_range(0.0, 1000.0)    # --atol-frac


def hidden_alias(parser, old, new, **kwargs):
    """Accept the old spelling ``old`` of the flag ``new`` for one release: hidden from --help, with a note on
    stderr when used. ``kwargs``: ``new``'s ``type``/``nargs``/``choices``, or ``action="store_true"`` or
    ``action="append"``."""
    action = kwargs.pop("action", None)

    class Alias(argparse.Action):
        def __call__(self, p, namespace, values, option_string=None):
            print(f"note: {old} is now {new}", file=sys.stderr)
            if action == "store_true":
                values = True
            elif action == "append":
                values = list(getattr(namespace, self.dest, None) or []) + [values]
            setattr(namespace, self.dest, values)

    if action == "store_true":
        kwargs["nargs"] = 0
    parser.add_argument(old, dest=new.lstrip("-").replace("-", "_"), action=Alias, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **kwargs)
