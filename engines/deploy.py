"""``python3 -m engines deploy BUNDLE`` (and ``scripts/deploy.sh``): make a device ready, unattended.

Steps, in order; the first failure stops the run:

1. preflight: the bundle (manifest, sha256 of every file, nothing unlisted); TensorRT (Python bindings, else
   trtexec) and its version against the target's; a GPU through the CUDA runtime; free disk in the engine
   cache folder; memory + swap for the builder; the power mode (``--max-perf``: MAXN + jetson_clocks, sudo
   -n, restored on exit, also after a failure or SIGTERM);
2. build (or reuse: a second deploy finds the engine by its cache key and does not rebuild);
3. verify: preprocessing, logits and top-k on the bundle's golden data.

One status JSON is always written (``--status-file``, default ``BUNDLE/deploy-status.json``), also on failure:
``{schema, status: "ok" | "failed", exit_code, failed_step, error, engine, steps: [{name, ok, seconds,
detail}], started, finished}``. Exit status: 0 deployed, 1 verification failed, 2 bad input (bundle, flags),
3 missing prerequisite (TensorRT, GPU, disk, memory, Pillow), 4 power mode or sudo. No network access, no
prompt with ``--no-prompt``.
"""

import os
import sys
import time

from . import envinfo
from .errors import EXIT_OK, MissingPrerequisite, VerificationFailed

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
    from .targets import get_target

    need_mem = get_target(target).builder_memory_mib  # MemAvailable + SwapFree the builder wants
    if available is not None and available < need_mem:
        raise MissingPrerequisite("only {} MiB of memory + swap available ({} MiB wanted by the TensorRT builder): "
                                  "close programs or add swap (e.g. a 4 GB swap file)".format(available, need_mem))
    return {"free_disk_mib": free_mib, "disk_needed_mib": need_disk, "memory_swap_mib": available,
            "memory_needed_mib": need_mem}


def check_tensorrt(manifest, builder):
    """The TensorRT that will build: ``{"builder", "trt_version", "target_trt"}``; a note when its version
    differs from the target's."""
    from .targets import get_target
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
    target_trt = get_target(manifest["target"]).tensorrt
    info = {"builder": builder, "trt_version": version, "target_trt": target_trt}
    if parse_version(version)[:2] != parse_version(target_trt)[:2]:
        info["note"] = "TensorRT {} here, the bundle targets {}".format(version, target_trt)
    return info


class Deployment(object):
    """Runs the steps and records them; :meth:`status` is the status document."""

    def __init__(self, bundle, log=None):
        self.bundle = bundle
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
        for s in self.steps:
            s.pop("_start", None)
        failed = next((s["name"] for s in self.steps if not s["ok"]), None)
        return {"schema": DEPLOY_SCHEMA, "bundle": os.path.abspath(self.bundle),
                "status": "ok" if exit_code == EXIT_OK else "failed", "exit_code": exit_code,
                "failed_step": failed, "error": error, "engine": self.engine, "steps": self.steps,
                "started": self.started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "env": envinfo.collect()}


def run_deploy(args, deployment):
    """The steps for parsed ``deploy`` arguments; raises on the first failure (the CLI maps it)."""
    from .inference import EngineOptions, make_backend
    from .manifest import open_bundle
    from .power import power_session
    from .verify import tolerance_for, verify_bundle_outputs

    bundle = args.bundle
    opened = []

    def check_bundle():  # the bundle, and the engine flags for it (a --dla-core its target cannot take: exit 2)
        m = open_bundle(bundle)
        opened.extend([m, EngineOptions.for_bundle(bundle, m, precision=args.precision, cache_dir=args.cache_dir,
                                                   dla_core=args.dla_core)])
        return {"target": m["target"], "model": m["model"]["base_model"], "files": len(m["files"]),
                "dla_core": args.dla_core}

    deployment.step("bundle", check_bundle)
    manifest, options = opened
    from .targets import get_target

    if get_target(manifest["target"]).runtime == "onnxruntime":  # CPU boards: engines/deploy_cpu.py
        from .deploy_cpu import run_cpu_deploy

        return run_cpu_deploy(args, deployment, manifest)
    trt = deployment.step("tensorrt", lambda: check_tensorrt(manifest, args.builder))
    deployment.step("gpu", lambda: envinfo.device_identity(trt["trt_version"]))
    onnx_bytes = os.path.getsize(os.path.join(bundle, manifest["onnx"]["file"]))
    deployment.step("resources", lambda: check_resources(options.cache_dir, onnx_bytes, manifest["target"]))
    record = deployment.start("power")
    with power_session(args.max_perf, not args.no_prompt, deployment.log) as power:
        deployment.finish(record, power)

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
