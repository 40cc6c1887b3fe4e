"""trtexec: command lines for building, running and timing engines with the flags of a given TensorRT version,
parsers for what trtexec prints and exports, and the trtexec builder and backend: the fallback when the
TensorRT Python bindings do not import. Engines built here get the same cache key and sidecar as the Python
builder's (the GPU identified through the CUDA runtime, the TensorRT version from trtexec's banner).

Verification through trtexec (:class:`TrtexecBackend`) feeds the golden inputs with ``--loadInputs`` (raw
float32) and reads the logits back from ``--exportOutput`` (JSON, values printed with 6 significant digits:
far inside the FP16/FP32 gates; ``nan``/``inf`` tokens are read as such and fail the gates).

Version differences (see :mod:`engines.trt_compat`): workspace ``--workspace=MiB`` (8.2) against
``--memPoolSize=workspace:<MiB>M`` (8.4+); ``--explicitBatch`` accepted up to 9.x, rejected by 10.x;
``--percentile`` one value (8.2) or a list (8.5+); ``--exportTimes`` JSON includes warm-ups (8.2, with
``endToEndMs``) or not (8.5+); no ``--fp16`` on 11 (``--stronglyTyped`` with a float16 ONNX).

DLA (``dla_core``): ``--useDLACore=N --allowGPUFallback`` to build, ``--useDLACore=N`` to load; the layers
that fell back to the GPU are read from the build log (its two formats: :func:`engines.trt_compat.parse_dla_fallback`)
into the sidecar; trtexec's "Cannot create DLA engine, N not available" is a missing prerequisite (exit 3).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import namedtuple

from .build import build_mode, dla_flags, make_sidecar, reusable
from .common.errors import EnginesError, MissingPrerequisite
from .common.fileio import atomic_path, scratch_dir
from .profiles import MIB
from .trt_compat import api_for_version, parse_dla_fallback, parse_version, version_key

TRTEXEC_PATHS = ("/usr/src/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")  # Jetson, NGC containers
PERCENTILES = (90, 95, 99)

_PREFIX = r"^(?:\[[^\]]*\]\s*)*"  # "[11/01/2024-10:32:46] [I] "
_METRICS = {
    "GPU Compute Time": "gpu_compute_ms",
    "Latency": "latency_ms",
    "End-to-End Host Latency": "end_to_end_ms",
    "Enqueue Time": "enqueue_ms",
    "H2D Latency": "h2d_ms",
    "D2H Latency": "d2h_ms",
}
_METRIC_LINE = re.compile(_PREFIX + r"(" + "|".join(re.escape(m) for m in _METRICS) + r"): (min = .*)$",
                          re.MULTILINE)
_STAT = re.compile(r"(min|max|mean|median|percentile\(([\d.]+)%\)) = ([-+\d.eE]+|inf|nan) ms")
_THROUGHPUT = re.compile(_PREFIX + r"Throughput: ([-+\d.eE]+) qps", re.MULTILINE)
_WALLTIME = re.compile(_PREFIX + r"Total Host Walltime: ([-+\d.eE]+) s", re.MULTILINE)
_BANNER = re.compile(r"\[TensorRT (v\d+)\]")
_NO_DLA = re.compile(r"Cannot create DLA engine, (\d+) not available")


def find_trtexec():
    """The trtexec executable: ``$TRTEXEC``, then PATH, then the Jetson and NGC locations."""
    candidates = [os.environ.get("TRTEXEC"), shutil.which("trtexec")] + list(TRTEXEC_PATHS)
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise MissingPrerequisite("trtexec not found (looked at $TRTEXEC, PATH, {})".format(", ".join(TRTEXEC_PATHS)))


def detect_version(trtexec):
    """The TensorRT version tuple of a trtexec executable, from the banner it prints first
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --help")."""
    try:
        res = subprocess.run([trtexec, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnginesError(f"cannot run {trtexec}: {exc}") from None
    banner = _BANNER.search(res.stdout)
    if not banner:
        raise EnginesError(f"cannot tell the TensorRT version of {trtexec}: pass --trt-version")
    return parse_version(banner.group(1))


def shape_spec(name, shape):
    """trtexec's shape syntax: ``input:1x3x224x224``."""
    return "{}:{}".format(name, "x".join(str(d) for d in shape))


def _dla(dla_core, fallback=False):
    if dla_core is None:
        return []
    return ["--useDLACore={}".format(int(dla_core))] + (["--allowGPUFallback"] if fallback else [])


def build_command(api, trtexec, onnx_path, engine_path, profile, precision, onnx_dtype="float32",
                  timing_cache=None, fp32_norms=False, fp32_softmax=False, dla_core=None):
    """argv that builds ``engine_path`` from ``onnx_path`` with ``profile`` (:class:`~engines.profiles.Profile`)
    and ``precision`` ("fp16" | "fp32") using the flags of TensorRT ``api.version``, on DLA core ``dla_core``
    with GPU fallback (None: GPU only)."""
    if fp32_norms or fp32_softmax:
        raise EnginesError("--fp32-norms/--fp32-softmax need the Python builder (`python3 -m engines build`): "
                           "trtexec can only pin layers it is given by exact name")
    mode = build_mode(api, precision, onnx_dtype)
    cmd = [trtexec, "--onnx=" + onnx_path, "--saveEngine=" + engine_path]
    if api.trtexec_explicit_batch:
        cmd.append("--explicitBatch")
    cmd += ["--minShapes=" + shape_spec(profile.input_name, profile.min_shape),
            "--optShapes=" + shape_spec(profile.input_name, profile.opt_shape),
            "--maxShapes=" + shape_spec(profile.input_name, profile.max_shape)]
    mib = profile.workspace_bytes // MIB
    if api.trtexec_workspace == "--workspace":
        cmd.append(f"--workspace={mib}")
    else:
        cmd.append(f"--memPoolSize=workspace:{mib}M")
    cmd.append({"fp16-flag": "--fp16", "strongly-typed": "--stronglyTyped", "fp32": "--noTF32"}[mode])
    if timing_cache:
        cmd.append("--timingCacheFile=" + timing_cache)
    return cmd + _dla(dla_core, fallback=True)


def timing_command(api, trtexec, engine_path, input_name, shape, warmup_ms=1000, iterations=1000,
                   export_times=None, data_transfers=False, cuda_graph=False, dla_core=None):
    """argv that times ``engine_path`` for input ``shape``: ``warmup_ms`` of warm-up, then exactly
    ``iterations`` runs, without host<->device copies unless ``data_transfers``, replayed as a CUDA graph
    with ``cuda_graph``; percentiles 90/95/99 (8.5+) or 99 (8.2); a DLA engine loaded on ``dla_core``."""
    cmd = [trtexec, "--loadEngine=" + engine_path, "--shapes=" + shape_spec(input_name, shape),
           f"--warmUp={int(warmup_ms)}", f"--iterations={int(iterations)}", "--duration=0", "--useSpinWait"]
    cmd += _dla(dla_core)
    if not data_transfers:
        cmd.insert(-1, "--noDataTransfers")
    if cuda_graph:
        cmd.append("--useCudaGraph")
    if api.trtexec_percentiles == "single":
        cmd.append("--percentile=99")
    else:
        cmd.append("--percentile=" + ",".join(str(p) for p in PERCENTILES))
    if export_times:
        cmd.append("--exportTimes=" + export_times)
    return cmd


def _stats(body):
    stats = {}
    for key, pct, value in _STAT.findall(body):
        name = f"p{float(pct):g}" if pct else key
        stats[name] = float(value)
    return stats


def parse_summary(text):
    """trtexec's "Performance summary" -> ``{throughput_qps, total_host_walltime_s, gpu_compute_ms: {min, max,
    mean, median, p99, ...}, latency_ms, enqueue_ms, h2d_ms, d2h_ms, end_to_end_ms (8.2), trt_version}``."""
    result = {}
    for metric, body in _METRIC_LINE.findall(text):
        result[_METRICS[metric]] = _stats(body)
    if "gpu_compute_ms" not in result:
        raise EnginesError("no 'GPU Compute Time' line in the trtexec output: did the timing run fail?")
    throughput = _THROUGHPUT.search(text)
    walltime = _WALLTIME.search(text)
    banner = _BANNER.search(text)
    result["throughput_qps"] = float(throughput.group(1)) if throughput else None
    result["total_host_walltime_s"] = float(walltime.group(1)) if walltime else None
    result["trt_version"] = banner.group(1) if banner else None
    return result


def compute_times_ms(export_times, warmup_ms=None):
    """Per-run GPU compute times (ms) from ``--exportTimes`` JSON (text or parsed list). TensorRT 8.2 exports
    the warm-up runs too: pass its ``--warmUp`` in ms and runs that start computing before it are dropped
    (trtexec's own rule). 8.5+ exports only timed runs: leave ``warmup_ms`` None."""
    records = json.loads(export_times) if isinstance(export_times, str) else export_times
    if not isinstance(records, list) or not all(isinstance(r, dict) and "computeMs" in r for r in records):
        raise EnginesError("not a trtexec --exportTimes file: expected a list of records with computeMs")
    if warmup_ms is not None:
        records = [r for r in records if r["startComputeMs"] >= warmup_ms]
    if not records:
        raise EnginesError("the trtexec --exportTimes file has no timed runs")
    return [float(r["computeMs"]) for r in records]


# ---- running trtexec: builder and backend ---------------------------------------------------------------------

TrtexecSetup = namedtuple("TrtexecSetup", "api trtexec engine timing_cache identity")


def trtexec_setup(bundle_dir, manifest, options, trt_version=None, must_exist=True):
    """Where trtexec is, its TensorRT API, and the engine and timing-cache paths for ``options`` (the cache
    key of :func:`engines.build.engine_path_for`). Without ``must_exist`` a missing trtexec stands in as
    "trtexec" and an unidentifiable GPU as "unknown-gpu" (for printing command lines anywhere)."""
    from .build import engine_path_for
    from .envinfo import device_identity, tensorrt_version
    from .sidecar import slug

    try:
        trtexec = find_trtexec()
    except MissingPrerequisite:
        if must_exist or not (trt_version or tensorrt_version()):
            raise
        trtexec = "trtexec"
    version = trt_version or tensorrt_version() or ".".join(map(str, detect_version(trtexec)))
    api = api_for_version(version)
    try:
        identity = device_identity(version)
    except EnginesError:
        if must_exist:
            raise
        identity = {"trt_version": version, "gpu_name": "unknown-gpu", "compute_capability": "?"}
    engine = options.engine or engine_path_for(manifest, options.profile, options.label, options.cache_dir, identity,
                                               options.dla_core)
    timing_cache = options.timing_cache or os.path.join(options.cache_dir, "timing_{}_trt{}.cache".format(
        slug(identity["gpu_name"]), slug(version_key(version))))
    return TrtexecSetup(api, trtexec, engine, timing_cache, identity)


def _run(cmd, verbose=False, what="trtexec"):
    """Run trtexec; returns its output (also streamed to stderr with ``verbose``); a failure is one line naming
    its last line (a missing DLA core: :class:`MissingPrerequisite`)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if verbose:
                sys.stderr.write(line)
        proc.wait()
    except BaseException:  # Ctrl-C, SIGTERM: trtexec goes too
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    text = "".join(lines)
    if proc.returncode != 0:
        no_dla = _NO_DLA.search(text)
        if no_dla:
            raise MissingPrerequisite("--dla-core {}: trtexec finds no such DLA core on this module (the Orin Nano "
                                      "has none): build without --dla-core".format(no_dla.group(1)))
        tail = [ln for ln in lines if ln.strip()][-1:] or ["no output"]
        raise EnginesError("{} failed (exit {}): {}".format(what, proc.returncode, tail[0].strip()))
    return text


def build_with_trtexec(bundle_dir, manifest, options, trt_version=None, force=False, verbose=False):
    """Build (or reuse) the engine for ``options`` with trtexec: same cache key and sidecar as the Python
    builder; the engine and timing cache are written through staging files (nothing partial is left)."""
    from .build import BuildResult
    from .sidecar import write_sidecar

    setup = trtexec_setup(bundle_dir, manifest, options, trt_version)
    if not force:
        sidecar = reusable(setup.engine, setup.identity)
        if sidecar is not None:
            return BuildResult(setup.engine, sidecar, True)
    onnx_path = os.path.join(bundle_dir, manifest["onnx"]["file"])
    mode = build_mode(setup.api, options.precision, manifest["onnx"]["input"]["dtype"], options.fp32_norms,
                      options.fp32_softmax)
    os.makedirs(options.cache_dir, exist_ok=True)
    with atomic_path(setup.engine) as engine_tmp, atomic_path(setup.timing_cache) as cache_tmp:
        if os.path.isfile(setup.timing_cache):
            shutil.copyfile(setup.timing_cache, cache_tmp)
        cmd = build_command(setup.api, setup.trtexec, onnx_path, engine_tmp, options.profile, options.precision,
                            manifest["onnx"]["input"]["dtype"], cache_tmp, options.fp32_norms, options.fp32_softmax,
                            options.dla_core)
        start = time.time()
        log = _run(cmd, verbose, "trtexec build")
        seconds = round(time.time() - start, 3)
        if not os.path.getsize(engine_tmp):
            raise EnginesError("trtexec reported success but wrote no engine")
        from .manifest import sha256_file

        digest = sha256_file(engine_tmp)
    flags = {"mode": mode, "fp32_norms": False, "fp32_softmax": False,
             "workspace_mib": options.profile.workspace_bytes // MIB, "timing_cache": setup.timing_cache,
             "pinned_fp32_layers": [], "argv": [setup.trtexec] + [c for c in cmd[1:] if not c.startswith(
                 ("--saveEngine=", "--timingCacheFile="))],
             "dla": dla_flags(options.dla_core, parse_dla_fallback(setup.api, log))}
    sidecar = make_sidecar(setup.engine, digest, setup.identity, manifest, options.label, options.profile, flags,
                           seconds, "trtexec", options.dla_core)
    sidecar = write_sidecar(setup.engine, sidecar)
    return BuildResult(setup.engine, sidecar, False)


def inference_command(api, trtexec, engine_path, input_name, shape, inputs_file, output_file, dla_core=None):
    """argv that runs ``engine_path`` once on the raw float32 ``inputs_file`` and writes the outputs as JSON
    (a DLA engine loaded on ``dla_core``)."""
    return [trtexec, "--loadEngine=" + engine_path, "--shapes=" + shape_spec(input_name, shape),
            "--loadInputs={}:{}".format(input_name, inputs_file), "--exportOutput=" + output_file,
            "--iterations=1", "--warmUp=0", "--duration=0"] + _dla(dla_core)


_NONFINITE = re.compile(r"(?<![\w.])(-?)(nan|inf)(?![\w.])", re.IGNORECASE)


def parse_export_output(text, name):
    """The output tensor ``name`` from trtexec's ``--exportOutput`` JSON: ``(dims tuple, list of floats)``.
    trtexec prints non-finite values as ``nan``, ``-nan``, ``inf``: they come back as float NaN/Inf."""
    def token(match):
        if match.group(2).lower() == "nan":
            return "NaN"
        return "-Infinity" if match.group(1) else "Infinity"

    try:
        records = json.loads(_NONFINITE.sub(token, text))
    except ValueError as exc:
        raise EnginesError("cannot read trtexec --exportOutput JSON: {}".format(exc)) from None
    if not isinstance(records, list):
        raise EnginesError("trtexec --exportOutput JSON is not a list of tensors")
    for record in records:
        if isinstance(record, dict) and record.get("name") == name:
            dims = tuple(int(d) for d in re.findall(r"\d+", str(record.get("dimensions", ""))))
            values = record.get("values")
            if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
                raise EnginesError("trtexec --exportOutput: tensor {} has no numeric values".format(name))
            return dims, [float(v) for v in values]
    raise EnginesError("trtexec --exportOutput has no tensor {!r}".format(name))


class TrtexecBackend(object):
    """The engine for ``options`` run by trtexec, one process per chunk of at most the profile's max batch."""

    name = "trtexec"

    def __init__(self, bundle_dir, manifest, options, trt_version=None):
        from .runtime import check_engine

        self.manifest, self.options = manifest, options
        self.setup = trtexec_setup(bundle_dir, manifest, options, trt_version)
        if not os.path.isfile(self.setup.engine):
            raise EnginesError("no engine {} for these flags: run `python3 -m engines build {}` (or scripts/build.sh) "
                               "with the same flags first".format(self.setup.engine, bundle_dir))
        self.sidecar = check_engine(self.setup.engine, self.setup.identity, signed=not options.engine)
        self.max_batch = self.sidecar["profile"]["max"][0]
        self.min_batch = self.sidecar["profile"]["min"][0]

    def describe(self):
        sc = self.sidecar
        return {"backend": self.name, "engine": self.setup.engine, "precision": sc["precision"],
                "trt_version": self.setup.identity["trt_version"], "gpu_name": sc["gpu_name"],
                "trtexec": self.setup.trtexec}

    def run(self, batch):
        import numpy as np

        from .batches import check_batch
        from .runtime import padded

        batch = check_batch(batch, self.manifest)
        name = self.manifest["onnx"]["output"]["name"]
        chunks = []
        with scratch_dir(self.setup.engine) as tmp:
            for start in range(0, len(batch), self.max_batch):
                chunk = batch[start:start + self.max_batch]
                fed = padded(chunk, self.min_batch)  # a static-batch (DLA) engine takes no fewer
                inputs, outputs = os.path.join(tmp, "inputs.bin"), os.path.join(tmp, "outputs.json")
                fed.tofile(inputs)
                _run(inference_command(self.setup.api, self.setup.trtexec, self.setup.engine,
                                       self.options.profile.input_name, fed.shape, inputs, outputs,
                                       self.sidecar.get("dla_core")), what="trtexec inference")
                with open(outputs, "r") as f:
                    dims, values = parse_export_output(f.read(), name)
                if len(values) != len(fed) * self.manifest["num_classes"]:
                    raise EnginesError("trtexec returned {} values for {} images of {} classes".format(
                        len(values), len(fed), self.manifest["num_classes"]))
                chunks.append(np.asarray(values, dtype=np.float32).reshape(len(fed), -1)[:len(chunk)])
        return np.concatenate(chunks)

    def close(self):
        pass
