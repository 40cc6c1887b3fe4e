"""``python3 -m engines {build,verify,bench,info,trtexec-cmd,power-mode} BUNDLE_DIR [options]``.

Every subcommand takes the same engine-selecting flags (target, batch profile, precision, cache dir), so
``build``, ``verify`` and ``bench`` with the same flags find the same engine. ``--json`` makes the last line
of stdout one JSON object; ``--json-file PATH`` also writes it to PATH. Exit status (:mod:`.errors`): 0 ok,
1 verification failed, 2 usage error or bad input, 3 missing prerequisite, 4 power mode, 130 interrupted;
errors are one line on stderr, ``error: ...``.
"""

import argparse
import json
import os
import shlex
import sys
import time

from . import envinfo
from .argtypes import FRACTION, NONNEGATIVE_FLOAT, POSITIVE_INT, DefaultsFormatter, OneLineParser
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_VERIFY_FAILED,
    EnginesError,
    exit_status,
    first_line,
)
from .fileio import write_json_atomic
from .manifest import load_manifest, verify_files
from .profiles import profile_to_dict, resolve_profile
from .sidecar import precision_label
from .stats import PROTOCOLS
from .targets import TARGET_NAMES

BENCH_SCHEMA = "snp-edge-device-bench/2"  # /2: stats keys n, mean, ..., p95 in ms (as the host bench)


def _shared_flags():
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("engine selection (same flags for build, verify, bench)")
    g.add_argument("--target", choices=TARGET_NAMES, help="profile defaults (default: the manifest's target)")
    g.add_argument("--min-batch", type=POSITIVE_INT, help="profile min batch, images (default: the target's)")
    g.add_argument("--opt-batch", type=POSITIVE_INT, help="profile opt batch, images (default: the target's)")
    g.add_argument("--max-batch", type=POSITIVE_INT, help="profile max batch, images (default: the target's)")
    g.add_argument("--workspace-mib", type=POSITIVE_INT, help="builder workspace limit, MiB (default: the target's)")
    g.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="engine precision")
    g.add_argument("--fp32-norms", action="store_true",
                   help="pin the LayerNorm layers the manifest lists to FP32 (fp16 builds)")
    g.add_argument("--fp32-softmax", action="store_true",
                   help="pin the softmax layers the manifest lists to FP32 (fp16 builds)")
    g.add_argument("--cache-dir", help="engine cache folder (default: BUNDLE/trt-cache)")
    g.add_argument("--timing-cache", help="timing cache file (default: CACHE_DIR/timing_<gpu>_trt<ver>.cache)")
    g.add_argument("--engine", help="use this engine file instead of the cached one for these flags")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print the result as one JSON object, the last line of stdout")
    o.add_argument("--json-file", metavar="PATH", help="also write the result as JSON to PATH")
    o.add_argument("--verbose", action="store_true", help="TensorRT verbose log")
    return p


def legacy_json_flag(argv):
    """``--json PATH`` (before 0.2: write JSON to PATH) -> ``--json-file PATH``, with a notice on stderr."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--json=") or (arg == "--json" and i + 1 < len(argv) and argv[i + 1].endswith(".json")):
            path = arg.split("=", 1)[1] if "=" in arg else argv[i + 1]
            print("note: --json PATH is now --json-file PATH (--json alone prints JSON)", file=sys.stderr)
            out += ["--json-file", path]
            i += 1 if "=" in arg else 2
            continue
        out.append(arg)
        i += 1
    return out


def build_parser():
    shared = _shared_flags()
    parser = OneLineParser(prog="python3 -m engines", description=__doc__.splitlines()[0],
                                     formatter_class=DefaultsFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, text):
        return sub.add_parser(name, parents=[shared], help=text, description=text, formatter_class=DefaultsFormatter)

    p = command("build", "build (or reuse) the TensorRT engine for a bundle")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching engine is cached")

    p = command("verify", "compare engine logits with the golden logits")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("--atol-frac", type=NONNEGATIVE_FLOAT,
                   help="max abs error / logit scale (default: fp16 0.02, fp32 0.001)")
    p.add_argument("--min-top1", type=FRACTION, help="minimum top-1 agreement, 0..1 (default: 0.99)")

    p = command("bench", "time the engine: per-run latency statistics")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("--batch", type=POSITIVE_INT, default=1, help="images per run")
    p.add_argument("--warmup", type=POSITIVE_INT, default=PROTOCOLS["paper"]["warmup"], help="untimed runs first")
    p.add_argument("--runs", type=POSITIVE_INT, default=PROTOCOLS["paper"]["runs"], help="timed runs")
    p.add_argument("--trtexec", action="store_true",
                   help="time with trtexec (engine from `trtexec-cmd --stage build`) instead of the bindings")
    p.add_argument("--trt-version", help="trtexec's TensorRT version (default: detected)")
    p.add_argument("--warmup-ms", type=NONNEGATIVE_FLOAT, default=1000.0, help="trtexec warm-up time, ms")

    p = command("info", "environment, bundle and cached engines")
    p.add_argument("bundle", metavar="BUNDLE_DIR", nargs="?")

    p = command("trtexec-cmd", "print the trtexec command line for a stage")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("--stage", choices=("build", "bench"), default="build", help="which command line")
    p.add_argument("--trt-version", help="trtexec's TensorRT version (default: detected)")
    p.add_argument("--batch", type=POSITIVE_INT, default=1, help="images per run (bench)")
    p.add_argument("--runs", type=POSITIVE_INT, default=PROTOCOLS["paper"]["runs"], help="timed runs (bench)")
    p.add_argument("--warmup-ms", type=NONNEGATIVE_FLOAT, default=1000.0, help="warm-up time, ms (bench)")
    p.add_argument("--export-times", metavar="PATH", help="--exportTimes file (bench)")

    p = command("power-mode", "print the Jetson power mode (nvpmodel -q or $SNP_EDGE_NVPMODEL), or nothing")
    p.add_argument("bundle", metavar="BUNDLE_DIR", nargs="?", help="ignored; accepted for symmetry")
    return parser


# ---- helpers ------------------------------------------------------------------------------------------------

def _bundle(args):
    """The bundle's manifest; a bundle made with ``--fp16-safe`` turns --fp32-norms/--fp32-softmax on for fp16."""
    if not os.path.isdir(args.bundle):
        raise EnginesError(f"bundle folder not found: {args.bundle}")
    manifest = load_manifest(args.bundle)
    if manifest["onnx"]["fp16_safe"] and getattr(args, "precision", None) == "fp16":
        args.fp32_norms = args.fp32_softmax = True
    return manifest


def _profile(args, manifest):
    return resolve_profile(manifest, args.target, args.min_batch, args.opt_batch, args.max_batch,
                           args.workspace_mib)


def _label(args):
    return precision_label(args.precision, args.fp32_norms, args.fp32_softmax)


def _cache_dir(args):
    from .build import DEFAULT_CACHE_DIR

    return args.cache_dir or os.path.join(args.bundle, DEFAULT_CACHE_DIR)


def _engine_path(args, manifest, profile):
    """``--engine``, or the cached engine these flags select on this machine (which must exist)."""
    from .build import engine_path_for

    if args.engine:
        if not os.path.isfile(args.engine):
            raise EnginesError(f"engine not found: {args.engine}")
        return args.engine
    path = engine_path_for(manifest, profile, _label(args), _cache_dir(args), envinfo.device_identity())
    if not os.path.isfile(path):
        raise EnginesError(f"no engine for these flags in {_cache_dir(args)} (looked for {os.path.basename(path)}): run `python3 -m engines build "
                           f"{args.bundle}` with the same flags first")
    return path


def _emit(args, result, lines):
    """Print ``lines`` (to stderr with --json, whose JSON is then the last line of stdout) and write the JSON."""
    for line in lines:
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.json_file:
        write_json_atomic(args.json_file, result)
        print("wrote " + args.json_file, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result, sort_keys=True))


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- subcommands ---------------------------------------------------------------------------------------------

def cmd_build(args):
    from .build import build_bundle

    manifest = _bundle(args)
    profile = _profile(args, manifest)
    result = build_bundle(args.bundle, manifest, profile, args.precision, args.fp32_norms, args.fp32_softmax,
                          _cache_dir(args), args.timing_cache, args.force, args.verbose)
    sc = result.sidecar
    lines = ["{} {}".format("reused" if result.reused else "built", result.engine_path),
             "  TensorRT {} on {} (sm {}), {}, batch {}/{}/{}, build {:.1f} s".format(
                 sc["trt_version"], sc["gpu_name"], sc["compute_capability"], sc["precision"],
                 profile.min_shape[0], profile.opt_shape[0], profile.max_shape[0], sc["build_time_s"])]
    _emit(args, {"engine": result.engine_path, "reused": result.reused, "sidecar": sc}, lines)
    return 0


def cmd_verify(args):
    import numpy as np

    from .runtime import EngineRunner
    from .verify import tolerance_for, verify_engine

    manifest = _bundle(args)
    verify_files(args.bundle, manifest)
    engine_path = _engine_path(args, manifest, _profile(args, manifest))
    inputs = np.load(os.path.join(args.bundle, manifest["golden"]["inputs"]))
    golden = np.load(os.path.join(args.bundle, manifest["golden"]["outputs"]))
    if list(inputs.shape[1:]) != manifest["onnx"]["input"]["shape"][1:] or \
            golden.shape != (inputs.shape[0], manifest["num_classes"]):
        raise EnginesError(f"golden arrays {inputs.shape} and {golden.shape} do not match the manifest's input and num_classes")
    runner = EngineRunner(engine_path)
    try:
        tolerance = tolerance_for(runner.sidecar["precision"], args.atol_frac, args.min_top1)
        max_batch = runner.sidecar["profile"]["max"][0]
        report = verify_engine(runner, inputs, golden, manifest["onnx"]["output"]["name"], max_batch, tolerance)
    finally:
        runner.close()
    lines = ["{} {} ({} golden images, {})".format("PASS" if report["passed"] else "FAIL", engine_path,
                                                   report["n"], runner.sidecar["precision"]),
             "  max abs err {:.4g} (limit {:.4g}), max rel err {}, top-1 agreement {:.4f} (min {})".format(
                 report["max_abs_err"], report["atol"],
                 "n/a" if report["max_rel_err"] is None else "{:.4g}".format(report["max_rel_err"]),
                 report["top1_agreement"], report["min_top1"])]
    lines += ["  " + f for f in report["failures"]]
    _emit(args, {"engine": engine_path, "created": _now(), "report": report, "env": envinfo.collect()}, lines)
    return 0 if report["passed"] else EXIT_VERIFY_FAILED


def _trtexec_setup(args, profile, must_exist):
    """(TrtApi, trtexec path, engine path, timing cache path) for the trtexec fallback; the bare name
    "trtexec" stands in for a missing executable unless ``must_exist``."""
    from .sidecar import slug
    from .trt_compat import api_for_version
    from .trtexec import detect_version, find_trtexec

    try:
        trtexec = find_trtexec()
    except EnginesError:
        if must_exist or not (args.trt_version or envinfo.tensorrt_version()):
            raise
        trtexec = "trtexec"
    api = api_for_version(args.trt_version or envinfo.tensorrt_version() or detect_version(trtexec))
    cache_dir = _cache_dir(args)
    engine = args.engine or os.path.join(cache_dir, f"trtexec_{_label(args)}_b{profile.min_shape[0]}-{profile.opt_shape[0]}-{profile.max_shape[0]}.engine")
    timing_cache = args.timing_cache or os.path.join(cache_dir, "timing_trtexec_trt{}.cache".format(
        slug(".".join(str(v) for v in api.version))))
    return api, trtexec, engine, timing_cache


def _trtexec_latencies(args, manifest):
    """Run trtexec's timing command; (per-run GPU compute ms, trtexec summary, engine path)."""
    import subprocess
    import tempfile

    from .profiles import batch_shape
    from .trtexec import compute_times_ms, parse_summary, timing_command

    profile = _profile(args, manifest)
    api, trtexec, engine, _ = _trtexec_setup(args, profile, must_exist=True)
    if not os.path.isfile(engine):
        raise EnginesError(f"no trtexec engine {engine}: run scripts/build.sh (or `trtexec-cmd --stage build`) "
                           "first")
    fd, times_path = tempfile.mkstemp(prefix=".trtexec-times.", suffix=".json", dir=os.path.dirname(engine))
    os.close(fd)
    try:
        cmd = timing_command(api, trtexec, engine, profile.input_name,
                             batch_shape(manifest["onnx"]["input"]["shape"], args.batch), args.warmup_ms,
                             args.runs, times_path)
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if res.returncode != 0:
            tail = [ln for ln in res.stdout.splitlines() if ln.strip()][-1:] or ["no output"]
            raise EnginesError(f"trtexec failed ({res.returncode}): {tail[0]}")
        with open(times_path, "r") as f:
            warmup_ms = args.warmup_ms if api.export_times_warmups else None
            latencies = compute_times_ms(f.read(), warmup_ms)
    finally:
        os.unlink(times_path)
    return latencies, parse_summary(res.stdout), engine


def cmd_bench(args):
    from .stats import summarize, throughput

    manifest = _bundle(args)
    if args.trtexec:
        latencies, summary, engine_path = _trtexec_latencies(args, manifest)
        timer, warmup = "trtexec GPU compute time per run", {"warmup_ms": args.warmup_ms}
    else:
        from .runtime import time_engine

        engine_path = _engine_path(args, manifest, _profile(args, manifest))
        latencies = time_engine(engine_path, args.batch, args.warmup, args.runs)
        summary, timer, warmup = None, "cuda events per run", {"warmup_runs": args.warmup}
    stats = summarize(latencies)
    stats["throughput_img_s"] = throughput(args.batch, stats["mean"])
    env = envinfo.collect()
    result = {"schema": BENCH_SCHEMA, "created": _now(), "engine": engine_path, "target": manifest["target"],
              "model": manifest["model"]["base_model"], "precision": _label(args), "batch": args.batch,
              "timer": timer, "warmup": warmup, "stats": stats, "latencies_ms": latencies,
              "trtexec_summary": summary, "env": env}
    power = (env.get("jetson") or {}).get("power_mode")
    lines = [f"batch {args.batch}: mean {stats['mean']:.3f} ms, median {stats['median']:.3f}, p90 {stats['p90']:.3f}, "
             f"p95 {stats['p95']:.3f}, p99 {stats['p99']:.3f}, min {stats['min']:.3f}, max {stats['max']:.3f} ms "
             f"({stats['n']} runs), {stats['throughput_img_s'] or 0.0:.1f} img/s"]
    if env.get("jetson") is not None:
        lines.append("  Jetson power mode: {}".format(power["mode"] if power else "unknown (nvpmodel not found)"))
    _emit(args, result, lines)
    return 0


def cmd_info(args):
    env = envinfo.collect()
    result = {"env": env}
    lines = ["python {}  numpy {}  tensorrt {}".format(env["python"], env["numpy"], env["tensorrt"] or "-"),
             "device: {}".format(json.dumps(env["device"], sort_keys=True))]
    if env["jetson"]:
        lines.append("jetson: {}".format(json.dumps(env["jetson"], sort_keys=True)))
    if args.bundle:
        manifest = _bundle(args)
        m, onnx = manifest["model"], manifest["onnx"]
        result["manifest"] = manifest
        lines.append("bundle: {} for {}, {} ({:.3g} GMACs, {} params), opset {}, input {} {}".format(
            args.bundle, manifest["target"], m["base_model"], m["gmacs"], m["params"], onnx["opset"],
            onnx["input"]["name"], onnx["input"]["shape"]))
        if not m["accuracy_meaningful"]:
            lines.append("  notice: {}".format(m.get("notice") or "accuracy not meaningful for this model"))
        cache_dir = _cache_dir(args)
        engines = sorted(n for n in os.listdir(cache_dir) if n.endswith(".engine")) \
            if os.path.isdir(cache_dir) else []
        result["engines"] = engines
        lines.append("engines in {}: {}".format(cache_dir, ", ".join(engines) or "none"))
    _emit(args, result, lines)
    return 0


def cmd_trtexec_cmd(args):
    from .profiles import batch_shape
    from .trtexec import build_command, timing_command

    manifest = _bundle(args)
    profile = _profile(args, manifest)
    api, trtexec, engine, timing_cache = _trtexec_setup(args, profile, must_exist=False)
    if args.stage == "build":
        cmd = build_command(api, trtexec, os.path.join(args.bundle, manifest["onnx"]["file"]), engine, profile,
                            args.precision, manifest["onnx"]["input"]["dtype"], timing_cache,
                            args.fp32_norms, args.fp32_softmax)
    else:
        cmd = timing_command(api, trtexec, engine, profile.input_name,
                             batch_shape(manifest["onnx"]["input"]["shape"], args.batch), args.warmup_ms,
                             args.runs, args.export_times)
    line = " ".join(shlex.quote(c) for c in cmd)
    _emit(args, {"argv": cmd, "engine": engine, "profile": profile_to_dict(profile)}, [line])
    return 0


def cmd_power_mode(args):
    power = envinfo.power_mode()
    _emit(args, {"power_mode": power}, [power["mode"]] if power else [])
    return 0


COMMANDS = {"build": cmd_build, "verify": cmd_verify, "bench": cmd_bench, "info": cmd_info,
            "trtexec-cmd": cmd_trtexec_cmd, "power-mode": cmd_power_mode}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(legacy_json_flag(sys.argv[1:] if argv is None else list(argv)))
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("error: choose a command: " + ", ".join(sorted(COMMANDS)), file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (EnginesError, OSError) as exc:
        print("error: " + first_line(exc), file=sys.stderr)
        return exit_status(exc)
