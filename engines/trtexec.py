"""trtexec: command lines for building and timing engines with the flags of a given TensorRT version, and
parsers for what trtexec prints and exports. The fallback when the TensorRT Python bindings do not import.

Version differences (see :mod:`engines.trt_compat`): workspace ``--workspace=MiB`` (8.2) against
``--memPoolSize=workspace:<MiB>M`` (8.4+); ``--explicitBatch`` accepted up to 9.x, rejected by 10.x;
``--percentile`` one value (8.2) or a list (8.5+); ``--exportTimes`` JSON includes warm-ups (8.2, with
``endToEndMs``) or not (8.5+); no ``--fp16`` on 11 (``--stronglyTyped`` with a float16 ONNX).
"""

import json
import os
import re
import shutil
import subprocess

from .build import build_mode
from .errors import EnginesError
from .profiles import MIB
from .trt_compat import parse_version

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


def find_trtexec():
    """The trtexec executable: ``$TRTEXEC``, then PATH, then the Jetson and NGC locations."""
    candidates = [os.environ.get("TRTEXEC"), shutil.which("trtexec")] + list(TRTEXEC_PATHS)
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise EnginesError("trtexec not found (looked at $TRTEXEC, PATH, {})".format(", ".join(TRTEXEC_PATHS)))


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


def build_command(api, trtexec, onnx_path, engine_path, profile, precision, onnx_dtype="float32",
                  timing_cache=None, fp32_norms=False, fp32_softmax=False):
    """argv that builds ``engine_path`` from ``onnx_path`` with ``profile`` (:class:`~engines.profiles.Profile`)
    and ``precision`` ("fp16" | "fp32") using the flags of TensorRT ``api.version``."""
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
    return cmd


def timing_command(api, trtexec, engine_path, input_name, shape, warmup_ms=1000, iterations=1000,
                   export_times=None):
    """argv that times ``engine_path`` for input ``shape``: ``warmup_ms`` of warm-up, then exactly
    ``iterations`` runs without host<->device copies; percentiles 90/95/99 (8.5+) or 99 (8.2)."""
    cmd = [trtexec, "--loadEngine=" + engine_path, "--shapes=" + shape_spec(input_name, shape),
           f"--warmUp={int(warmup_ms)}", f"--iterations={int(iterations)}", "--duration=0",
           "--noDataTransfers", "--useSpinWait"]
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
