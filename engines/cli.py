"""``python3 -m engines {build,verify,bench,info,classify,deploy,trtexec-cmd,power-mode,profile} BUNDLE_DIR [options]``.

The commands that select an engine (``build``, ``verify``, ``bench``, ``classify``, ``deploy``,
``trtexec-cmd``) take the same engine flags (target, batch profile, precision, cache dir: :mod:`.options`,
parsed once into one :class:`~engines.inference.EngineOptions`), so the same flags find the same engine;
:data:`GROUPS` lists each command's flag groups. Every command that
takes a bundle checks it first (:func:`engines.manifest.open_bundle`: schema, sha256 of every file, nothing
unlisted, no links). ``--json`` makes the last line of stdout one JSON object; ``--json-file PATH`` also
writes it to PATH. Exit status (:mod:`.errors`), for every path: 0 ok, 1 verification failed, 2 usage error
or bad input, 3 missing prerequisite, 4 power mode, 130 interrupted, 143 terminated (SIGTERM: staged files
are removed first); errors are one line on stderr, ``error: ...``.
"""

import argparse
import json
import os
import shlex
import sys
import time

from . import envinfo
from .common.argtypes import (
    BATCH,
    FRACTION,
    FRAME_COUNT,
    RUNS,
    SMOOTHING,
    TELEMETRY_MS,
    THREADS,
    TOLERANCE,
    TOP_K,
    WARMUP,
    WARMUP_MS,
    DefaultsFormatter,
    OneLineParser,
)
from .common.errors import (
    EXIT_BAD_INPUT,
    EXIT_VERIFY_FAILED,
    EnginesError,
    MissingPrerequisite,
    UserError,
)
from .common.fileio import write_json_atomic
from .common.runner import describe_failure, run_command
from .common.stats import PROTOCOLS
from .inference import APP_BACKENDS, BACKENDS
from .manifest import open_bundle
from .options import EngineArgs, OutputArgs, PowerArgs, VerboseArgs
from .outputs import check_outputs
from .profile import add_parser as add_profile_parser
from .profile import cmd_profile
from .profiles import profile_to_dict

# The argument groups each command takes (engines/options.py); "hidden": accepted and ignored, not shown (the
# flags every command inherited before 0.3, kept for one release so old command lines still run).
_ENGINE, _OUT, _OUT_BUILD, _VERBOSE, _POWER = EngineArgs(), OutputArgs(verbose=False), OutputArgs(), VerboseArgs(), \
    PowerArgs()
GROUPS = {
    "build": ([_ENGINE, _OUT_BUILD, _POWER], []),
    "verify": ([_ENGINE, _OUT, _POWER], [_VERBOSE]),
    "bench": ([_ENGINE, _OUT, _POWER], [_VERBOSE]),
    "info": ([EngineArgs(only=("--cache-dir",)), _OUT], [EngineArgs(skip=("--cache-dir",)), _VERBOSE]),
    "classify": ([_ENGINE, _OUT], [_VERBOSE]),
    "deploy": ([_ENGINE, _OUT, _POWER], [_VERBOSE]),
    "trtexec-cmd": ([_ENGINE, _OUT], [_VERBOSE]),
    "power-mode": ([_OUT, _POWER], [_ENGINE, _VERBOSE]),
}


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
    parser = OneLineParser(prog="python3 -m engines", description=__doc__.splitlines()[0],
                           formatter_class=DefaultsFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, text):
        p = sub.add_parser(name, help=text, description=text, formatter_class=DefaultsFormatter)
        p.set_defaults(_groups=name)
        return p

    p = command("build", "build (or reuse) the TensorRT engine for a bundle")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching engine is cached")
    p.add_argument("--builder", choices=("auto", "tensorrt", "trtexec"), default="auto",
                   help="TensorRT's Python builder, or trtexec (auto: the bindings when they import)")
    p.add_argument("--trt-version", help="trtexec's TensorRT version (default: detected)")

    p = command("verify", "check preprocessing, logits and top-k on the bundle's golden data")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    _backend_flag(p, BACKENDS + ("auto",), "auto")
    p.add_argument("--atol-frac", type=TOLERANCE,
                   help="max abs error / logit scale (default: fp16 0.02, fp32 0.001)")
    p.add_argument("--min-top1", type=FRACTION, help="minimum top-1 agreement, 0..1 (default: 0.99)")
    p.add_argument("--prob-atol", type=FRACTION, help="max top-k probability error (default: fp16 0.01, fp32 1e-4)")
    p.add_argument("--skip-preprocessing", action="store_true",
                   help="do not check this device's preprocessing of the reference photographs")
    p.add_argument("--trt-version", help="trtexec's TensorRT version (default: detected)")

    p = command("bench", "time the model: latency statistics per batch size")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    _backend_flag(p, BACKENDS + ("auto",), "auto")
    p.add_argument("--trtexec", dest="backend", action="store_const", const="trtexec", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=BATCH, action="append",
                   help="images per run; repeat for several (default: 1, 2, 4, ... up to the profile's maximum)")
    p.add_argument("--warmup", type=WARMUP, default=PROTOCOLS["paper"]["warmup"],
                   help="untimed runs first, per batch size")
    p.add_argument("--runs", type=RUNS, default=PROTOCOLS["paper"]["runs"], help="timed runs per batch size")
    p.add_argument("--preprocess", action="store_true",
                   help="include preprocessing of reference frames (numpy/PIL) in the end-to-end time")
    p.add_argument("--cuda-graph", action="store_true",
                   help="replay each inference as a CUDA graph (TensorRT backend; trtexec --useCudaGraph)")
    p.add_argument("--telemetry-ms", type=TELEMETRY_MS, default=200,
                   help="tegrastats/sysfs sampling interval during the runs, ms (0: off)")
    p.add_argument("--threads", type=THREADS, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--trt-version", help="trtexec's TensorRT version (default: detected)")
    p.add_argument("--warmup-ms", type=WARMUP_MS, default=1000.0, help="trtexec warm-up time, ms")

    p = command("info", "environment, bundle and cached engines")
    p.add_argument("bundle", metavar="BUNDLE_DIR", nargs="?")

    p = command("classify", "classify images, folders, videos, cameras and streams: top-k classes per frame")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("images", metavar="SOURCE", nargs="+",
                   help="an image file, a folder of images, a video file, /dev/videoN, csi://N, rtsp:// or http(s):// "
                        "URL (video, cameras and streams through OpenCV)")
    p.add_argument("--backend", choices=("auto",) + APP_BACKENDS, default="auto",
                   help="what runs the model (auto: TensorRT where its bindings import and the engine loads, else "
                        "ONNX Runtime; the output says which)")
    p.add_argument("--preprocess", choices=("exact", "fast"), default="exact",
                   help="exact: timm's eval transform bit for bit; fast: the crop region only, block average + "
                        "bilinear (agreement in the bundle's README)")
    p.add_argument("--top-k", type=TOP_K, default=5, help="classes per frame")
    p.add_argument("--every", type=FRAME_COUNT, default=1, help="classify every Nth frame of a video or stream")
    p.add_argument("--max-frames", type=FRAME_COUNT, help="stop after this many frames per source (default: all)")
    p.add_argument("--smoothing", type=SMOOTHING, default=0.0,
                   help="average probabilities over frames of a source, in [0, 1): p = s * previous + (1 - s) * now")
    p.add_argument("--threshold", type=FRACTION, help="leave out classes below this probability")
    p.add_argument("--json-lines", action="store_true", help="print one JSON object per frame as it is classified")
    p.add_argument("--threads", type=THREADS, help="ONNX Runtime intra-op threads (default: all cores)")

    p = command("deploy", "preflight, build, verify: make this device ready; always writes a status JSON")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("--builder", choices=("auto", "tensorrt", "trtexec"), default="auto",
                   help="TensorRT's Python builder, or trtexec (auto: the bindings when they import)")
    p.add_argument("--status-file", metavar="PATH",
                   help="where the status JSON goes (default: BUNDLE/deploy-status.json)")
    p.add_argument("--backend", choices=APP_BACKENDS, default="tensorrt",
                   help="what the app will run: a TensorRT engine, or model.onnx in ONNX Runtime (no TensorRT)")
    p.add_argument("--preflight-only", action="store_true",
                   help="only the checks (bundle, runtime, GPU, disk, memory, power mode read): build nothing")

    p = command("trtexec-cmd", "print the trtexec command line for a stage")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("--stage", choices=("build", "bench"), default="build", help="which command line")
    p.add_argument("--trt-version", help="trtexec's TensorRT version (default: detected)")
    p.add_argument("--batch", type=BATCH, default=1, help="images per run (bench)")
    p.add_argument("--runs", type=RUNS, default=PROTOCOLS["paper"]["runs"], help="timed runs (bench)")
    p.add_argument("--warmup-ms", type=WARMUP_MS, default=1000.0, help="warm-up time, ms (bench)")
    p.add_argument("--export-times", metavar="PATH", help="--exportTimes file (bench)")

    p = command("power-mode", "print the Jetson power mode (nvpmodel -q or $SNP_EDGE_NVPMODEL), or run a "
                              "command in the fastest mode and restore the mode after it")
    p.add_argument("bundle", metavar="BUNDLE_DIR", nargs="?", help="ignored; accepted for symmetry")
    p.epilog = ("-- CMD ...: run CMD in the power session (the fastest mode with --max-perf, restored after it) "
                "and exit with its status; docker/run-jetson.sh wraps `docker run` this way")
    for name, (shown, hidden) in GROUPS.items():
        for group in shown:
            group.add_to_parser(sub.choices[name])
        for group in hidden:
            group.add_to_parser(sub.choices[name], hidden=True)
    deploy = sub.choices["deploy"]
    parser.deploy_value_options = {o for a in deploy._actions for o in a.option_strings if a.nargs != 0}
    add_profile_parser(sub, DefaultsFormatter)
    return parser


def _backend_flag(p, choices, default):
    p.add_argument("--backend", choices=choices, default=default,
                   help="what runs the model (auto: tensorrt when its Python bindings import, else trtexec)")


# ---- helpers ------------------------------------------------------------------------------------------------

def _bundle(args):
    """The bundle's manifest, after the integrity check."""
    return open_bundle(args.bundle)


def _options(args, manifest):
    """The :class:`engines.inference.EngineOptions` these flags select, built once per command."""
    return EngineArgs.parse(args, manifest)


def _cache_dir(args):
    from .build import DEFAULT_CACHE_DIR

    return args.cache_dir or os.path.join(args.bundle, DEFAULT_CACHE_DIR)


def _resolve_backend(args):
    """``--backend auto``: tensorrt where its Python bindings import, else trtexec where it is found."""
    if args.backend != "auto":
        return args.backend
    if envinfo.tensorrt_version() is not None:
        return "tensorrt"
    from .trtexec import find_trtexec

    try:
        find_trtexec()
    except EnginesError:
        raise MissingPrerequisite("neither the TensorRT Python bindings nor trtexec are available (the "
                                  "ONNX Runtime backend runs everywhere: --backend onnxruntime)") from None
    return "trtexec"


def _backend(args, manifest, name, options, build=False):
    from .inference import make_backend

    return make_backend(name, args.bundle, manifest, options, build=build,
                        threads=getattr(args, "threads", None))


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
    from .power import power_session

    manifest = _bundle(args)
    options = _options(args, manifest)
    builder = args.builder
    if builder == "auto":
        builder = "tensorrt" if envinfo.tensorrt_version() is not None else "trtexec"
    with power_session(args.max_perf, not args.no_prompt):
        if builder == "trtexec":
            from .trtexec import build_with_trtexec

            result = build_with_trtexec(args.bundle, manifest, options, args.trt_version, args.force, args.verbose)
        else:
            from .build import build_bundle

            result = build_bundle(args.bundle, manifest, options.profile, options.precision, options.fp32_norms,
                                  options.fp32_softmax, options.cache_dir, options.timing_cache, args.force,
                                  args.verbose, options.dla_core)
    sc, profile = result.sidecar, options.profile
    lines = ["{} {}".format("reused" if result.reused else "built", result.engine_path),
             "  TensorRT {} on {} (sm {}), {}, batch {}/{}/{}, build {:.1f} s, {}".format(
                 sc["trt_version"], sc["gpu_name"], sc["compute_capability"], sc["precision"],
                 profile.min_shape[0], profile.opt_shape[0], profile.max_shape[0], sc["build_time_s"],
                 sc.get("builder", "tensorrt"))]
    dla = (sc.get("build_flags") or {}).get("dla")
    if dla:
        fallback = dla["gpu_fallback_layers"]
        lines.append("  DLA core {}, GPU fallback: {}".format(dla["core"], "none" if fallback == [] else (
            "{} layers (sidecar build_flags.dla.gpu_fallback_layers)".format(len(fallback)) if fallback else
            "not reported")))
    _emit(args, {"engine": result.engine_path, "reused": result.reused, "sidecar": sc}, lines)
    return 0


def cmd_verify(args):
    from .power import power_session
    from .verify import tolerance_for, verify_bundle_outputs

    manifest = _bundle(args)
    options = _options(args, manifest)
    name = _resolve_backend(args)
    backend = _backend(args, manifest, name, options)
    try:
        info = backend.describe()
        tolerance = tolerance_for(info.get("precision", "fp32"), args.atol_frac, args.min_top1, args.prob_atol)
        with power_session(args.max_perf, not args.no_prompt):
            result = verify_bundle_outputs(args.bundle, manifest, backend, tolerance, not args.skip_preprocessing)
    finally:
        backend.close()
    report, pre, top = result["logits"], result["preprocessing"], result["top_k"]
    lines = ["{} {} ({} golden images, {}, {})".format("PASS" if result["passed"] else "FAIL",
                                                      info.get("engine") or info.get("model"), report["n"],
                                                      info["backend"], info.get("precision")),
             "  logits: max abs err {:.4g} (limit {:.4g}), max rel err {}, top-1 agreement {:.4f} (min {})".format(
                 report["max_abs_err"], report["atol"],
                 "n/a" if report["max_rel_err"] is None else "{:.4g}".format(report["max_rel_err"]),
                 report["top1_agreement"], report["min_top1"])]
    if pre is not None:
        lines.append("  preprocessing: {} reference photographs, max abs err {:.3g} (limit {:.3g})".format(
            pre["n"], pre["max_abs_err"], pre["atol"]))
    if top is not None:
        lines.append("  top-{}: max probability err {:.3g} (limit {:g}), same top-{} {:.2f}".format(
            top["k"], top["max_prob_err"], top["prob_atol"], top["k"], top["same_top_k"]))
    fp32 = result.get("fp32_distance")  # INT8 bundles: the engine against the FP32 model (not gated)
    if fp32:
        lines.append("  distance from FP32: max abs err {:.4g} (scale {:.4g}), top-1 agreement {:.4f}".format(
            fp32["max_abs_err"], fp32["logit_scale"], fp32["top1_agreement"]))
    lines += ["  " + f for f in result["failures"]]
    _emit(args, {"backend": info, "engine": info.get("engine"), "created": _now(), "passed": result["passed"],
                 "failures": result["failures"], "report": report, "preprocessing": pre, "top_k": top,
                 "fp32_distance": fp32, "env": envinfo.collect()}, lines)
    return 0 if result["passed"] else EXIT_VERIFY_FAILED


def cmd_bench(args):
    from .benchmark import run_bench_command

    manifest = _bundle(args)
    options = _options(args, manifest)
    result, lines = run_bench_command(args, manifest, _resolve_backend(args), options)
    _emit(args, result, lines)
    return 0


def cmd_classify(args):
    from .classify import Classifier, StreamFilter

    manifest = _bundle(args)
    StreamFilter(args.smoothing, args.threshold)  # bad values: exit 2 before the model loads
    options = _options(args, manifest)
    clf = Classifier(args.bundle, backend=args.backend, build=False, threads=args.threads,
                     preprocess=args.preprocess, options=options)  # every engine flag, through options
    text = sys.stderr if args.json or args.json_lines else sys.stdout
    results = []
    try:
        info = clf.describe()
        print("backend: {}{}, preprocessing {}".format(info["backend"], " ({})".format(info["auto"])
                                                       if info.get("auto") else "", info["preprocess"]), file=text)
        for frame, row in clf.stream(args.images, args.top_k, args.every, args.max_frames, args.smoothing,
                                     args.threshold):
            record = {"image": frame.name, "source": frame.source, "frame": frame.index, "backend": info["backend"],
                      "top_k": [{"class_id": c, "label": label, "prob": p} for c, p, label in row]}
            if args.json_lines:
                print(json.dumps(record, sort_keys=True), flush=True)
            else:
                results.append(record)
            print(frame.name if frame.name != frame.source or frame.color == "rgb" else
                  "{} frame {}".format(frame.source, frame.index), file=text)
            for c, p, label in row:
                print("  {:>6.2%}  {:>5}  {}".format(p, c, label), file=text)
            text.flush()
    finally:
        clf.close()
    if args.json or args.json_file:
        args.json_lines = False
        _emit(args, {"results": results, "backend": info}, [])
    return 0


def cmd_deploy(args):
    from .deploy import STATUS_FILE, Deployment, run_deploy

    deployment = Deployment(args.bundle, backend=args.backend, preflight_only=args.preflight_only)
    status_file = args.status_file or os.path.join(args.bundle, STATUS_FILE)
    _write_status(status_file, deployment.status(None))  # no earlier run's status survives this one
    try:
        run_deploy(args, deployment)
        code, message = 0, None
    except BaseException as exc:  # noqa: B036 (the status file records every failure, then it propagates)
        if isinstance(exc, SystemExit):
            raise
        code, message = describe_failure(exc)
        status = deployment.status(code, message)
        _write_status(status_file, status)
        if args.json:
            print(json.dumps(status, sort_keys=True))
        raise
    status = deployment.status(code, message)
    _write_status(status_file, status)
    done = "preflight passed" if args.preflight_only else "deployed: {}".format(deployment.engine)
    _emit(args, status, [done, "status: " + status_file])
    return 0


def _parse_deploy(parser, argv):
    """Parse a ``deploy`` command line; a usage error rewrites its status file first (exit 2 recorded)."""
    import contextlib
    import io

    from .deploy import record_usage_error

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parser.parse_args(argv)
    except SystemExit as exc:
        text = err.getvalue()
        if exc.code:
            lines = text.strip().splitlines()
            message = lines[-1].split("error: ", 1)[-1] if lines else "usage error"
            record_usage_error(argv, message, parser.deploy_value_options, _write_status,
                               lambda status: print(json.dumps(status, sort_keys=True)))
        sys.stderr.write(text)
        raise


def _write_status(path, status):
    try:
        write_json_atomic(path, status)
    except OSError as exc:
        print("error: cannot write the status file {}: {}".format(path, exc.strerror or exc), file=sys.stderr)


def cmd_info(args):
    env = envinfo.collect()
    result = {"env": env}
    lines = ["python {}  numpy {}  onnxruntime {}  Pillow {}  OpenCV {}  tensorrt {}".format(
        env["python"], env["numpy"] or "-", env["onnxruntime"] or "-", env["pillow"] or "-", env["opencv"] or "-",
        env["tensorrt"] or "-"), "os: {}; CPU {} ({} cores)".format(env["os"], env["cpu_model"], env["cpu_count"]),
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
    from .trtexec import build_command, timing_command, trtexec_setup

    manifest = _bundle(args)
    options = _options(args, manifest)
    setup = trtexec_setup(args.bundle, manifest, options, args.trt_version, must_exist=False)
    if args.stage == "build":
        cmd = build_command(setup.api, setup.trtexec, os.path.join(args.bundle, manifest["onnx"]["file"]),
                            setup.engine, options.profile, options.precision, manifest["onnx"]["input"]["dtype"],
                            setup.timing_cache, options.fp32_norms, options.fp32_softmax, options.dla_core)
    else:
        cmd = timing_command(setup.api, setup.trtexec, setup.engine, options.profile.input_name,
                             batch_shape(manifest["onnx"]["input"]["shape"], args.batch), args.warmup_ms,
                             args.runs, args.export_times, dla_core=options.dla_core)
    line = " ".join(shlex.quote(c) for c in cmd)
    _emit(args, {"argv": cmd, "engine": setup.engine, "profile": profile_to_dict(options.profile)}, [line])
    return 0


def cmd_power_mode(args):
    command = args.run
    if not command:
        from .power_modes import power_modes

        power, modes = envinfo.power_mode(), power_modes()
        listed = ", ".join("{} {}".format(i, name) for i, name in sorted(modes["modes"].items()))
        lines = [power["mode"] if power else "unknown (nvpmodel not found)"]
        if listed:
            lines.append("modes: {} (from {}); fastest: {} (id {})".format(
                listed, modes["source"], modes["fastest"]["mode"], modes["fastest"]["id"]))
        if not power and not listed:
            lines = ["no Jetson power modes here: nvpmodel not found, $SNP_EDGE_NVPMODEL unset, no nvpmodel.conf{}"
                     .format("" if envinfo.is_jetson() else " (not a Jetson)")]
        _emit(args, {"power_mode": power, "power_modes": {str(i): n for i, n in modes["modes"].items()},
                     "fastest": modes["fastest"] if listed else None, "jetson": envinfo.is_jetson()}, lines)
        return 0
    import subprocess

    from .power import power_session

    with power_session(args.max_perf, not args.no_prompt):
        try:
            child = subprocess.Popen(command)
        except OSError as exc:
            raise UserError("cannot run {}: {}".format(command[0], exc.strerror or exc)) from None
        try:
            return child.wait()
        except BaseException:  # Ctrl-C or SIGTERM: stop the command the same way, then restore the mode
            child.terminate()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
            raise


COMMANDS = {"build": cmd_build, "verify": cmd_verify, "bench": cmd_bench, "info": cmd_info,
            "classify": cmd_classify, "deploy": cmd_deploy, "trtexec-cmd": cmd_trtexec_cmd,
            "power-mode": cmd_power_mode, "profile": cmd_profile}


def main(argv=None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    run = argv[argv.index("--") + 1:] if "--" in argv else []  # power-mode ... -- CMD
    argv = argv[:argv.index("--")] if "--" in argv else argv
    argv = legacy_json_flag(argv)
    args = _parse_deploy(parser, argv) if argv[:1] == ["deploy"] else parser.parse_args(argv)
    args.run = run
    if run and args.command != "power-mode":
        parser.error("only power-mode takes a command after --")
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("error: choose a command: " + ", ".join(sorted(COMMANDS)), file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_command(_run, args)


def _run(args):
    check_outputs(args)  # before any work: never over a bundle's files, never into an unwritable folder
    return COMMANDS[args.command](args)
