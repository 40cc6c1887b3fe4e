"""``python3 -m engines deploy BUNDLE`` (and ``scripts/deploy.sh``): make a device ready, unattended.

Steps, in order; the first failure stops the run:

1. preflight: the bundle (manifest, sha256 of every file, nothing unlisted); TensorRT (Python bindings, else
   trtexec) and its version against the target's; a GPU through the CUDA runtime; free disk in the engine
   cache folder; memory + swap for the builder; the power mode (``--max-perf``: MAXN + jetson_clocks, sudo
   -n, restored on exit, also after a failure or SIGTERM);
2. build (or reuse: a second deploy finds the engine by its cache key and does not rebuild);
3. verify: preprocessing, logits and top-k on the bundle's golden data.

``--backend onnxruntime`` deploys the ONNX model for ONNX Runtime instead (steps bundle, onnxruntime, power,
verify; no TensorRT, no GPU needed). ``--preflight-only`` stops after the checks (nothing built, the power mode
only read).

One status JSON is always written (``--status-file``, default ``BUNDLE/deploy-status.json``), and rewritten
first on every exit, usage errors included (``deploy.sh --bogus`` leaves exit_code 2 there, never the previous
run's status); a run in progress shows ``status: "running"``. ``--json`` prints it on failure too (the last
line of stdout), so a caller over ssh needs no second fetch::

    {schema, bundle, status: "ok" | "failed" | "running", exit_code, failed_step, error, backend,
     preflight_only, engine, steps: [{name, ok, seconds, detail}], started, finished, env}

Exit status: 0 deployed, 1 verification failed, 2 bad input (bundle, flags), 3 missing prerequisite (TensorRT,
GPU, disk, memory, Pillow, onnxruntime), 4 power mode or sudo. No network access, no prompt with
``--no-prompt``. ``PYTHON=/path/to/python3 scripts/deploy.sh`` runs it with another interpreter.
"""

import contextlib
import os
import sys
import time

from . import envinfo
from .common.errors import EXIT_OK, MissingPrerequisite, VerificationFailed

DEPLOY_SCHEMA = "snp-edge-deploy/1"
STATUS_FILE = "deploy-status.json"
MIN_FREE_DISK_MIB = 512  # besides twice the ONNX size: engine + timing cache + staging copy


def meminfo_mib(text=None):
    """``{"MemAvailable": MiB, "SwapFree": MiB, ...}`` from /proc/meminfo (or ``text``); {} where absent."""
    if text is None:
        try:
            with open("/proc/meminfo") as f:
                text = f.read()
        except OSError:
            return {}
    out = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1]) // 1024  # kB -> MiB
    return out


def check_resources(cache_dir, onnx_bytes, target):
    """Free disk for the engine cache and memory + swap for the builder; returns the numbers, raises
    :class:`MissingPrerequisite` naming what is short and how to get it."""
    folder = cache_dir
    while not os.path.isdir(folder):
        folder = os.path.dirname(os.path.abspath(folder))
    st = os.statvfs(folder)
    free_mib = st.f_bavail * st.f_frsize >> 20
    need_disk = MIN_FREE_DISK_MIB + 2 * (onnx_bytes >> 20)
    if free_mib < need_disk:
        raise MissingPrerequisite("only {} MiB free in {} ({} MiB needed for the engine and timing cache): free "
                                  "some disk or pass --cache-dir".format(free_mib, folder, need_disk))
    mem = meminfo_mib()
    available = mem.get("MemAvailable", 0) + mem.get("SwapFree", 0) if mem else None
    from .common.targets import resolve_target

    need_mem = resolve_target(target).builder_memory_mib  # MemAvailable + SwapFree the builder wants
    if available is not None and available < need_mem:
        raise MissingPrerequisite("only {} MiB of memory + swap available ({} MiB wanted by the TensorRT builder): "
                                  "close programs or add swap (e.g. a 4 GB swap file)".format(available, need_mem))
    return {"free_disk_mib": free_mib, "disk_needed_mib": need_disk, "memory_swap_mib": available,
            "memory_needed_mib": need_mem}


def check_tensorrt(manifest, builder, target=None):
    """The TensorRT that will build: ``{"builder", "trt_version", "target_trt"}``; a note when its version
    differs from the target's."""
    from .common.targets import resolve_target
    from .trt_compat import parse_version

    version = envinfo.tensorrt_version()
    if builder in ("auto", "tensorrt") and version is not None:
        builder = "tensorrt"
    else:
        from .trtexec import detect_version, find_trtexec

        if builder == "tensorrt":
            raise MissingPrerequisite("the TensorRT Python bindings do not import (try --builder trtexec)")
        try:
            trtexec = find_trtexec()
        except MissingPrerequisite:
            raise MissingPrerequisite("TensorRT is missing: neither its Python bindings nor trtexec are found "
                                      "(JetPack: sudo apt-get install tensorrt; x86: use docker/run-x86.sh)") from None
        version = ".".join(map(str, detect_version(trtexec)))
        builder = "trtexec"
    target_trt = resolve_target(target or manifest["target"]).tensorrt
    info = {"builder": builder, "trt_version": version, "target_trt": target_trt}
    if parse_version(version)[:2] != parse_version(target_trt)[:2]:
        info["note"] = "TensorRT {} here, the bundle targets {}".format(version, target_trt)
    return info


class Deployment(object):
    """Runs the steps and records them; :meth:`status` is the status document."""

    def __init__(self, bundle, log=None, backend="tensorrt", preflight_only=False):
        self.bundle = bundle
        self.backend, self.preflight_only = backend, preflight_only
        self.log = log or (lambda text: print(text, file=sys.stderr))
        self.steps = []
        self.engine = None
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def start(self, name):
        """Record the start of step ``name`` (not ok until :meth:`finish`)."""
        self.log("[deploy] " + name)
        record = {"name": name, "ok": False, "seconds": None, "detail": None, "_start": time.time()}
        self.steps.append(record)
        return record

    def finish(self, record, detail=None):
        record.update(ok=True, seconds=round(time.time() - record.pop("_start"), 3), detail=detail)
        return detail

    def step(self, name, fn):
        """Run ``fn()`` as step ``name``; its return value (a dict or None) is the step's detail."""
        record = self.start(name)
        return self.finish(record, fn())

    def status(self, exit_code, error=None):
        """The status document; ``exit_code`` None: still running."""
        steps = [{k: v for k, v in s.items() if k != "_start"} for s in self.steps]
        failed = next((s["name"] for s in steps if not s["ok"]), None) if exit_code is not None else None
        state = "running" if exit_code is None else "ok" if exit_code == EXIT_OK else "failed"
        return {"schema": DEPLOY_SCHEMA, "bundle": os.path.abspath(self.bundle), "status": state,
                "exit_code": exit_code, "failed_step": failed, "error": error, "backend": self.backend,
                "preflight_only": self.preflight_only, "engine": self.engine, "steps": steps,
                "started": self.started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "env": envinfo.collect()}


def run_deploy(args, deployment):
    """The steps for parsed ``deploy`` arguments; raises on the first failure (the CLI maps it)."""
    from .common.targets import resolve_target
    from .inference import make_backend
    from .manifest import open_bundle
    from .options import EngineArgs
    from .verify import tolerance_for, verify_bundle_outputs

    bundle = args.bundle
    opened = []

    def check_bundle():  # the bundle, and the engine flags for it (a --dla-core its target cannot take: exit 2)
        m = open_bundle(bundle)
        opened.extend([m, EngineArgs.parse(args, m)])  # every engine flag, as build and verify take them
        return {"target": m["target"], "model": m["model"]["base_model"], "files": len(m["files"]),
                "dla_core": args.dla_core}

    deployment.step("bundle", check_bundle)
    manifest, options = opened
    target = resolve_target(manifest["target"])  # once for the steps below
    if getattr(args, "backend", "tensorrt") == "onnxruntime" or target.runtime == "onnxruntime":
        return _deploy_onnxruntime(args, deployment, manifest)  # --backend onnxruntime, and the CPU boards
    trt = deployment.step("tensorrt", lambda: check_tensorrt(manifest, args.builder, target))
    deployment.step("gpu", lambda: envinfo.device_identity(trt["trt_version"]))
    onnx_bytes = os.path.getsize(os.path.join(bundle, manifest["onnx"]["file"]))
    deployment.step("resources", lambda: check_resources(options.cache_dir, onnx_bytes, target))
    if _preflight_only(args, deployment):
        return
    with _power_step(args, deployment):

        def build():
            if trt["builder"] == "trtexec":
                from .trtexec import build_with_trtexec

                result = build_with_trtexec(bundle, manifest, options, trt["trt_version"])
            else:
                from .build import build_bundle

                result = build_bundle(bundle, manifest, options.profile, options.precision, options.fp32_norms,
                                      options.fp32_softmax, options.cache_dir, dla_core=options.dla_core)
            deployment.engine = result.engine_path
            return {"engine": result.engine_path, "reused": result.reused,
                    "build_time_s": result.sidecar["build_time_s"], "builder": result.sidecar.get("builder")}

        deployment.step("build", build)

        def verify():
            backend = make_backend("tensorrt" if trt["builder"] == "tensorrt" else "trtexec", bundle, manifest,
                                   options, build=False)
            try:
                tolerance = tolerance_for(backend.describe()["precision"])
                report = verify_bundle_outputs(bundle, manifest, backend, tolerance)
            finally:
                backend.close()
            if not report["passed"]:
                raise VerificationFailed("verification failed: " + report["failures"][0])
            return {"logits_max_abs_err": report["logits"]["max_abs_err"],
                    "preprocessing_max_abs_err": (report["preprocessing"] or {}).get("max_abs_err"),
                    "top_k_max_prob_err": (report["top_k"] or {}).get("max_prob_err")}

        deployment.step("verify", verify)


def _preflight_only(args, deployment):
    """``--preflight-only``: record the power mode as it is (nothing changed) and stop after the checks."""
    if getattr(args, "preflight_only", False):
        deployment.step("power", lambda: {"power_mode": envinfo.power_mode(), "changed": False})
        return True
    return False


@contextlib.contextmanager
def _power_step(args, deployment):
    """The ``power`` step: the power session (``--max-perf``) that build and verify run inside, restored on exit."""
    from .power import power_session

    record = deployment.start("power")
    with power_session(args.max_perf, not args.no_prompt, deployment.log) as power:
        deployment.finish(record, power)
        yield

def check_onnxruntime(threads=None):
    """ONNX Runtime and the libraries the app needs: ``{"onnxruntime", "providers", "pillow", "numpy"}``."""
    from .common.ort import import_onnxruntime
    from .preprocess import import_pil

    ort = import_onnxruntime()
    import_pil()
    import numpy
    import PIL

    return {"onnxruntime": ort.__version__, "providers": list(ort.get_available_providers()),
            "pillow": PIL.__version__, "numpy": numpy.__version__, "threads": threads}


def _deploy_onnxruntime(args, deployment, manifest):
    """``--backend onnxruntime`` and the CPU targets (``runtime == "onnxruntime"`` in the target table: Raspberry
    Pi, ARM64 boards): the runtime's checks, the CPU's cores, clocks and temperatures where the board exposes
    them, then the golden data through model.onnx (an INT8 bundle is gated with the int8 tolerance)."""
    from .deploy_cpu import cpu_info
    from .inference import make_backend
    from .verify import tolerance_for, verify_bundle_outputs

    threads = getattr(args, "threads", None)
    deployment.step("onnxruntime", lambda: check_onnxruntime(threads))
    deployment.step("cpu", cpu_info)
    if _preflight_only(args, deployment):
        return
    with _power_step(args, deployment):

        def verify():
            backend = make_backend("onnxruntime", deployment.bundle, manifest, threads=threads)
            try:
                precision = backend.describe()["precision"]
                report = verify_bundle_outputs(deployment.bundle, manifest, backend, tolerance_for(precision))
            finally:
                backend.close()
            if not report["passed"]:
                raise VerificationFailed("verification failed: " + report["failures"][0])
            deployment.engine = os.path.join(os.path.abspath(deployment.bundle), manifest["onnx"]["file"])
            return {"backend": "onnxruntime", "precision": precision,
                    "logits_max_abs_err": report["logits"]["max_abs_err"],
                    "preprocessing_max_abs_err": (report["preprocessing"] or {}).get("max_abs_err"),
                    "top_k_max_prob_err": (report["top_k"] or {}).get("max_prob_err"),
                    "fp32_distance": report.get("fp32_distance")}

        deployment.step("verify", verify)


def usage_target(argv, value_options):
    """``(bundle, status file or None)`` named by a ``deploy`` command line that did not parse: the first
    argument after ``deploy`` that is neither an option nor an option's value (``value_options``: the
    options that take one), and ``--status-file``. Lenient: never raises."""
    bundle, status_file, i = None, None, 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--status-file="):
            status_file = arg.split("=", 1)[1]
        elif arg == "--status-file" and i + 1 < len(argv):
            status_file = argv[i + 1]
            i += 1
        elif arg in value_options:
            i += 1
        elif not arg.startswith("-") and bundle is None:
            bundle = arg
        i += 1
    return bundle, status_file


def record_usage_error(argv, message, value_options, write, print_json):
    """A ``deploy`` usage error: the failed status (exit 2, ``failed_step`` "usage") written with ``write(path,
    status)`` to the status file the command line names (or BUNDLE/deploy-status.json where BUNDLE is a
    folder), and printed with ``print_json(status)`` when the line has ``--json``."""
    from .common.errors import EXIT_BAD_INPUT

    bundle, status_file = usage_target(argv, value_options)
    deployment = Deployment(bundle or ".", backend=None)
    deployment.steps.append({"name": "usage", "ok": False, "seconds": 0.0, "detail": None})
    status = deployment.status(EXIT_BAD_INPUT, message)
    if status_file is None and bundle is not None and os.path.isfile(os.path.join(bundle, "manifest.json")):
        status_file = os.path.join(bundle, STATUS_FILE)
    if status_file is not None:
        write(status_file, status)
    if "--json" in argv:
        print_json(status)
    return status
