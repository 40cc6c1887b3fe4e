"""The argument groups of ``python3 -m engines``, in the manner of Polygraphy's ``tools/args``: each group adds
its flags to the commands that use it and parses them into one object, once per command. A command lists its
groups (:data:`engines.cli.GROUPS`); a group a command used to inherit but ignores is added hidden
(``argparse.SUPPRESS``: still accepted, so old command lines keep working for one release, and not shown).

==============  ========================================================================  ====================
group           flags                                                                     parses into
==============  ========================================================================  ====================
EngineArgs      --target --min/--opt/--max-batch --workspace-mib --precision --dla-core   EngineOptions (the
                --fp32-norms --fp32-softmax --cache-dir --timing-cache --engine           target resolved once)
OutputArgs      --json --json-file (--verbose: TensorRT's log, where a command builds)    the namespace
PowerArgs       --max-perf --no-prompt                                                    the namespace
==============  ========================================================================  ====================
"""

import argparse

from .common.argtypes import BATCH, DLA_CORE, WORKSPACE_MIB
from .common.targets import TARGET_NAMES


class ArgGroup(object):
    """One group of flags. :meth:`add_to_parser` puts them on ``parser`` (hidden: accepted, not shown)."""

    title = ""

    def __init__(self, only=None, skip=()):
        self.only, self.skip = only, skip  # flag strings to add (None: all), and to leave out

    def add_to_parser(self, parser, hidden=False):
        group = parser if hidden else parser.add_argument_group(self.title)

        def add(*flags, **kw):
            if flags[0] in self.skip or (self.only is not None and flags[0] not in self.only):
                return
            if hidden:
                kw["help"] = argparse.SUPPRESS
            group.add_argument(*flags, **kw)

        self.add_flags(add)

    def add_flags(self, add):
        raise NotImplementedError


class EngineArgs(ArgGroup):
    """Which engine: the same flags find the same engine in build, verify, bench, classify, deploy, trtexec-cmd."""

    title = "engine selection (the same flags find the same engine in build, verify, bench, classify, deploy)"

    def add_flags(self, add):
        add("--target", choices=TARGET_NAMES, help="profile defaults (default: the manifest's target)")
        add("--min-batch", type=BATCH, help="profile min batch, images (default: the target's)")
        add("--opt-batch", type=BATCH, help="profile opt batch, images (default: the target's)")
        add("--max-batch", type=BATCH, help="profile max batch, images (default: the target's)")
        add("--workspace-mib", type=WORKSPACE_MIB, help="builder workspace limit, MiB (default: the target's)")
        add("--precision", choices=("fp16", "fp32", "int8"), default="fp16",
            help="engine precision (an INT8 bundle, snp-edge bundle --precision int8, builds int8)")
        add("--dla-core", type=DLA_CORE, metavar="N",
            help="run on DLA core N with GPU fallback (Jetson Orin NX / AGX Orin; one batch size; default: GPU)")
        add("--fp32-norms", action="store_true", default=None,
            help="pin the LayerNorm layers the manifest lists to FP32 (fp16 builds; a bundle made with --fp16-safe "
                 "pins them anyway)")
        add("--fp32-softmax", action="store_true", default=None,
            help="pin the softmax layers the manifest lists to FP32 (fp16 builds; a bundle made with --fp16-safe "
                 "pins them anyway)")
        add("--cache-dir", help="engine cache folder (default: BUNDLE/trt-cache)")
        add("--timing-cache", help="timing cache file (default: CACHE_DIR/timing_<gpu>_trt<ver>.cache)")
        add("--engine", help="use this engine file instead of the cached one for these flags")

    @staticmethod
    def parse(args, manifest):
        """The :class:`engines.inference.EngineOptions` these flags select for ``args.bundle`` (its manifest
        ``manifest``, already checked): the device target resolved once, the fp16-safe pins and the INT8
        precision of an INT8 bundle applied in one place (:meth:`EngineOptions.for_bundle`)."""
        from .inference import EngineOptions

        return EngineOptions.for_bundle(
            args.bundle, manifest, target=args.target, min_batch=args.min_batch, opt_batch=args.opt_batch,
            max_batch=args.max_batch, workspace_mib=args.workspace_mib, precision=args.precision,
            fp32_norms=args.fp32_norms, fp32_softmax=args.fp32_softmax, cache_dir=args.cache_dir,
            timing_cache=args.timing_cache, engine=args.engine, dla_core=args.dla_core)


class OutputArgs(ArgGroup):
    """--json, --json-file; --verbose (TensorRT's verbose log) where the command builds or runs an engine."""

    title = "output"

    def __init__(self, verbose=True):
        ArgGroup.__init__(self)
        self.verbose = verbose

    def add_flags(self, add):
        add("--json", action="store_true", help="print the result as one JSON object, the last line of stdout")
        add("--json-file", metavar="PATH", help="also write the result as JSON to PATH")
        if self.verbose:
            add("--verbose", action="store_true", help="TensorRT verbose log")


class VerboseArgs(ArgGroup):
    """--verbose alone (hidden where a command has no TensorRT log to show)."""

    def add_flags(self, add):
        add("--verbose", action="store_true", help="TensorRT verbose log")


class PowerArgs(ArgGroup):
    title = "Jetson power mode"

    def add_flags(self, add):
        add("--max-perf", action="store_true",
            help="set the module's fastest power mode (MAXN, MAXN_SUPER, ...) and jetson_clocks (sudo -n) for this "
                 "command; restored on exit")
        add("--no-prompt", action="store_true", help="never ask (default asks on a terminal)")
