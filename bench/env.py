"""The environment a measurement ran in. Every probe is optional: a missing tool or file leaves its key
None and never fails the run. GPU (nvidia-smi) and Jetson (power mode, clocks) probes are those of
:mod:`engines.envinfo`, so host and device results describe machines the same way."""

from __future__ import annotations

import os
import platform
import sys
from glob import glob
from importlib import metadata
from typing import Any

from snp_edge.engines.envinfo import jetson_info, nvidia_smi_info, read_text, tensorrt_version

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "TIMM_FUSED_ATTN", "SNP_EDGE_NVPMODEL")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_info() -> dict[str, Any]:
    """CPU model, logical cores, cores usable by this process, current clocks (MHz) and governor."""
    model = None
    for line in (read_text("/proc/cpuinfo") or "").splitlines():
        if line.lower().startswith(("model name", "hardware")):
            model = line.split(":", 1)[1].strip()
            break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = None
    khz = [read_text(p) for p in sorted(glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"))]
    return {
        "model": model or platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "machine": platform.machine(),
        "cur_freq_mhz": [int(k) // 1000 for k in khz if k and k.isdigit()] or None,
        "governor": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    }


def versions() -> dict[str, str | None]:
    """Python, torch, CUDA (as torch sees it), onnxruntime, onnx, timm, numpy, TensorRT (if importable)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "timm", "numpy"):
        out[name] = _version(name)
    torch = sys.modules.get("torch")
    out["cuda"] = getattr(getattr(torch, "version", None), "cuda", None)
    try:
        out["tensorrt"] = tensorrt_version()
    except Exception:  # bindings present but their CUDA libraries are not
        out["tensorrt"] = None
    return out


def capture_env() -> dict[str, Any]:
    """OS, CPU, versions, GPU (nvidia-smi: name, driver, clocks in MHz, power limit), Jetson (L4T, power
    mode, clocks in MHz), torch threads and the thread-related environment variables."""
    env: dict[str, Any] = {
        "os": platform.platform(),
        "cpu": cpu_info(),
        "versions": versions(),
        "gpu": nvidia_smi_info(),
        "jetson": jetson_info(),
        "env_vars": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        env["torch_cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return env
