"""Environment probes for ``info``, bench JSON and engine sidecars. Every probe in :func:`collect` is
optional: a missing tool, file or module leaves its key None and never fails.

Clocks are in MHz. On a Jetson inside a container ``nvpmodel`` is absent; ``docker/run-jetson.sh`` passes the
host's ``nvpmodel -q`` output in the ``SNP_EDGE_NVPMODEL`` environment variable instead.
"""

import glob
import os
import platform
import re
import shutil
import subprocess
import sys

from .common.errors import MissingPrerequisite, first_line

TEGRA_RELEASE = "/etc/nv_tegra_release"
NVPMODEL_ENV = "SNP_EDGE_NVPMODEL"
# the GPU's devfreq folder (cur_freq, max_freq in Hz): Jetson Nano (57000000.gpu, also under gpu.0), Orin on
# L4T R35 (17000000.ga10b) and R36 (17000000.gpu); the first that exists wins
GPU_DEVFREQ_GLOBS = ("/sys/devices/gpu.0/devfreq/*", "/sys/class/devfreq/17000000.*", "/sys/class/devfreq/57000000.*",
                     "/sys/devices/platform/gpu.0/devfreq/*")
CPU_FREQ = "/sys/devices/system/cpu/cpu0/cpufreq/{}"  # kHz
FAN_PWM = "/sys/devices/pwm-fan/target_pwm"  # 0..255


def run_text(args, timeout=5.0):
    """stdout of a command, or None when it is absent, fails or hangs."""
    if shutil.which(args[0]) is None:
        return None
    try:
        res = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                             timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def read_text(path):
    """A small file's stripped text, or None."""
    try:
        with open(path, "r") as f:
            return f.read().strip().strip("\x00")
    except OSError:
        return None


def parse_nvpmodel(text):
    """``nvpmodel -q`` output ("NV Fan Mode:quiet\\nNV Power Mode: MAXN\\n0") -> ``{"mode": "MAXN", "id": 0}``;
    None when no power mode is in it."""
    match = re.search(r"NV Power Mode:[ \t]*(\S+)[ \t]*(?:\r?\n[ \t]*(\d+))?", text or "")
    if not match:
        return None
    return {"mode": match.group(1), "id": int(match.group(2)) if match.group(2) else None}


def parse_l4t_release(text):
    """``/etc/nv_tegra_release`` ("# R32 (release), REVISION: 7.1, ...") -> "32.7.1"; None if unrecognised."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _mhz(text, per_mhz):
    try:
        return round(int(text) / float(per_mhz), 1)
    except (TypeError, ValueError):
        return None


def gpu_devfreq_dir():
    """The Jetson GPU's devfreq folder (see :data:`GPU_DEVFREQ_GLOBS`), or None."""
    for pattern in GPU_DEVFREQ_GLOBS:
        paths = sorted(glob.glob(pattern))
        if paths:
            return paths[0]
    return None


def _gpu_freq(name):
    folder = gpu_devfreq_dir()
    return read_text(os.path.join(folder, name)) if folder else None


def is_jetson():
    return os.path.exists(TEGRA_RELEASE)


def power_mode():
    """The Jetson power mode ``{"mode", "id"}`` from ``nvpmodel -q`` or ``$SNP_EDGE_NVPMODEL``; else None."""
    return parse_nvpmodel(run_text(["nvpmodel", "-q"]) or os.environ.get(NVPMODEL_ENV))


def jetson_info():
    """L4T release, board model, power mode (and the module's modes, its fastest), clocks (MHz) and fan PWM
    on a Jetson; None elsewhere."""
    if not is_jetson():
        return None
    from .power_modes import power_modes

    modes = power_modes()
    return {
        "l4t": parse_l4t_release(read_text(TEGRA_RELEASE)),
        "model": modes["module"],
        "power_mode": power_mode(),
        "power_modes": {str(i): name for i, name in sorted(modes["modes"].items())},
        "power_modes_source": modes["source"],
        "fastest_power_mode": modes["fastest"],
        "gpu_clock_mhz": _mhz(_gpu_freq("cur_freq"), 1e6),
        "gpu_clock_max_mhz": _mhz(_gpu_freq("max_freq"), 1e6),
        "cpu0_clock_mhz": _mhz(read_text(CPU_FREQ.format("scaling_cur_freq")), 1e3),
        "cpu0_clock_max_mhz": _mhz(read_text(CPU_FREQ.format("cpuinfo_max_freq")), 1e3),
        "fan_pwm": read_text(FAN_PWM),
    }


def nvidia_smi_info():
    """GPU name, driver, SM/memory clocks (MHz) and power limit from nvidia-smi (x86); None without it."""
    fields = ("name", "driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm", "power.limit", "pstate")
    out = run_text(["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"])
    if not out:
        return None
    return dict(zip(fields, [v.strip() for v in out.splitlines()[0].split(",")]))  # noqa: B905 (strict= is 3.10+)


def tensorrt_version():
    """``tensorrt.__version__``, or None when the bindings do not import."""
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt.__version__


def device_identity(trt_version=None):
    """``{"trt_version", "gpu_name", "compute_capability", "cuda_backend"}`` for sidecars and their checks:
    the TensorRT version of the Python bindings (or ``trt_version``, e.g. trtexec's), the GPU through the CUDA
    runtime (:func:`engines.gpu.open_cuda`)."""
    from .gpu import open_cuda

    version = trt_version or tensorrt_version()
    if version is None:
        raise MissingPrerequisite("the TensorRT Python bindings do not import: cannot identify the engine runtime")
    cuda = open_cuda()
    info = cuda.device_info()
    return {"trt_version": version, "gpu_name": info["gpu_name"],
            "compute_capability": info["compute_capability"], "cuda_backend": cuda.name}


def module_version(name):
    """``name.__version__`` of an importable module, else None (never raises)."""
    try:
        module = __import__(name)
    except Exception:  # ImportError, or a broken install raising anything at import
        return None
    return getattr(module, "__version__", None)


def cpu_model(text=None):
    """The CPU's model name from /proc/cpuinfo (x86 "model name", Arm "Model"/"Hardware"), else the machine."""
    if text is None:
        text = read_text("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware"):
        match = re.search(r"^{}\s*:\s*(.+)$".format(key), text, re.M)
        if match:
            return match.group(1).strip()
    return platform.machine() or None


def collect():
    """Everything this module can find, for bench JSON and ``info``; never raises."""
    numpy_version = module_version("numpy")
    try:
        identity = device_identity()
    except Exception as exc:  # no GPU, no driver, no bindings: report why, keep going
        identity = {"error": first_line(exc)}
    return {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy_version,
        "onnxruntime": module_version("onnxruntime"),
        "pillow": module_version("PIL"),
        "opencv": module_version("cv2"),
        "tensorrt": tensorrt_version(),
        "device": identity,
        "jetson": jetson_info(),
        "nvidia_smi": nvidia_smi_info(),
    }
