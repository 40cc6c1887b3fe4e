"""Jetson telemetry sampled while a benchmark runs: clocks, load, temperatures, power rails.

Source: ``tegrastats --interval MS`` where it exists (a line per interval, parsed by :func:`parse_tegrastats`),
else the sysfs files a container also sees (GPU clock, thermal zones; no rails), else nothing. A
:class:`Sampler` runs in a background thread; :func:`summarize` reduces the samples of one time window (one
batch size) to means, extremes, the energy per image and a throttling flag.

Throttling is flagged when the GPU clock in some sample of the window falls below 90% of the highest GPU
clock seen in the whole run, or a temperature reaches 80 C (Jetson modules start to throttle near 97 C,
but a board that hot has been slowing its clocks already).

tegrastats formats understood (L4T 32.x / Jetson Nano, L4T 35 / AGX Orin, L4T 36 / Orin Nano and NX)::

    RAM 1510/3956MB (lfb 5x4MB) SWAP 0/1978MB (cached 0MB) CPU [20%@1479,5%@1479,off,4%@1479] EMC_FREQ 0%@1600
    GR3D_FREQ 99%@921 APE 25 PLL@34C CPU@36.5C GPU@35C thermal@35.75C POM_5V_IN 4725/4725 POM_5V_GPU 2063/2063 ...
    ... EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] ... tj@44.375C ... VDD_GPU_SOC 2383mW/2383mW VIN_SYS_5V0 2822mW/2822mW
    ... GR3D_FREQ 0%@[305] NVENC off ... cpu@47.5C ... VDD_IN 4421mW/4421mW VDD_CPU_GPU_CV 483mW/483mW VDD_SOC ...

Rails are "current/average" in mW. The board input rail (``POM_5V_IN``, ``VDD_IN``, ``VIN_SYS_5V0``,
``VDD_IN`` of the module) gives the energy per image: mean input power (W) x window (s) / images. The GPU
rail is the GPU's own where the module has one (Nano, AGX Orin); Orin Nano and NX report CPU, GPU and CV
together (``VDD_CPU_GPU_CV``).
"""

import glob
import os
import re
import shutil
import subprocess
import threading
import time

THROTTLE_CLOCK_FRAC = 0.9
THROTTLE_TEMP_C = 80.0
INPUT_RAILS = ("POM_5V_IN", "VDD_IN", "VIN_SYS_5V0", "VIN")  # the whole board, first found wins
GPU_RAILS = ("POM_5V_GPU", "VDD_GPU_SOC", "VDD_GPU", "GPU", "VDD_CPU_GPU_CV")

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?(\d+)[^\s]*)?")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]+) (\d+)(?:mW)?/(\d+)(?:mW)?\b")


def parse_tegrastats(line):
    """One tegrastats line -> ``{ram_mb, ram_total_mb, swap_mb, cpu_load_pct: [..], cpu_mhz: [..],
    emc_load_pct, emc_mhz, gpu_load_pct, gpu_mhz, temps_c: {name: C}, rails_mw: {name: current mW}}``
    (keys absent when the line lacks them); None for a line that is not tegrastats output."""
    sample = {}
    m = _RAM.search(line)
    if m:
        sample["ram_mb"], sample["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    m = _SWAP.search(line)
    if m:
        sample["swap_mb"], sample["swap_total_mb"] = int(m.group(1)), int(m.group(2))
    m = _CPU.search(line)
    if m:
        loads, clocks = [], []
        for core in m.group(1).split(","):
            cm = re.match(r"\s*(\d+)%@(\d+)", core)
            if cm:
                loads.append(int(cm.group(1)))
                clocks.append(int(cm.group(2)))
        sample["cpu_load_pct"], sample["cpu_mhz"] = loads, clocks
    m = _EMC.search(line)
    if m:
        sample["emc_load_pct"] = int(m.group(1))
        if m.group(2):
            sample["emc_mhz"] = int(m.group(2))
    m = _GR3D.search(line)
    if m:
        sample["gpu_load_pct"] = int(m.group(1))
        if m.group(2):
            sample["gpu_mhz"] = int(m.group(2))
    # -256C: sensor off (Orin); PMIC@100C: a fixed placeholder on the Nano/TX1, not a reading
    temps = {name: float(v) for name, v in _TEMP.findall(line) if float(v) > -200 and name != "PMIC"}
    if temps:
        sample["temps_c"] = temps
    rails = {name: int(cur) for name, cur, _avg in _RAIL.findall(line)
             if name not in ("RAM", "SWAP", "IRAM", "EMC_FREQ", "GR3D_FREQ")}
    if rails:
        sample["rails_mw"] = rails
    return sample if ("ram_mb" in sample or "gpu_load_pct" in sample) else None


def read_sysfs_sample():
    """A sample from sysfs where tegrastats is missing (containers): GPU clock and thermal zones."""
    from .envinfo import gpu_devfreq_dir

    sample = {}
    folder = gpu_devfreq_dir()
    if folder:
        try:
            with open(os.path.join(folder, "cur_freq")) as f:
                sample["gpu_mhz"] = int(f.read().strip()) // 1000000
        except (OSError, ValueError):
            pass
    temps = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        try:
            with open(os.path.join(zone, "type")) as f:
                name = f.read().strip()
            with open(os.path.join(zone, "temp")) as f:
                temps[name] = int(f.read().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    from .cpu_telemetry import read_cpu_sample

    cpu = read_cpu_sample()  # CPU clocks; vcgencmd temperature and throttling on a Raspberry Pi
    temps.update(cpu.pop("temps_c", {}))
    sample.update(cpu)
    if temps:
        sample["temps_c"] = temps
    return sample or None


class Sampler(object):
    """Samples telemetry every ``interval_ms`` in a background thread: ``start()``, ``stop()``; ``samples``
    is a list of ``(time.time(), sample dict)``; ``source`` is "tegrastats", "sysfs" or "none"."""

    def __init__(self, interval_ms=200, tegrastats=None):
        self.interval_ms = interval_ms
        self.samples = []
        self._proc = None
        self._thread = None
        self._stop = threading.Event()
        self._tegrastats = tegrastats if tegrastats is not None else shutil.which("tegrastats")
        if interval_ms <= 0:
            self.source = "none"
        elif self._tegrastats:
            self.source = "tegrastats"
        else:
            self.source = "sysfs" if read_sysfs_sample() else "none"

    def start(self):
        if self.source == "tegrastats":
            try:
                self._proc = subprocess.Popen([self._tegrastats, "--interval", str(int(self.interval_ms))],
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                              universal_newlines=True)
            except OSError:
                self.source = "none"
                return self
            self._thread = threading.Thread(target=self._read_tegrastats, name="tegrastats")
        elif self.source == "sysfs":
            self._thread = threading.Thread(target=self._poll_sysfs, name="sysfs-telemetry")
        else:
            return self
        self._thread.daemon = True
        self._thread.start()
        return self

    def _read_tegrastats(self):
        for line in self._proc.stdout:
            sample = parse_tegrastats(line)
            if sample is not None:
                self.samples.append((time.time(), sample))

    def _poll_sysfs(self):
        while not self._stop.wait(self.interval_ms / 1000.0):
            sample = read_sysfs_sample()
            if sample is not None:
                self.samples.append((time.time(), sample))

    def stop(self):
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _mean(values):
    return sum(values) / len(values) if values else None


def _first_rail(samples, names):
    for name in names:
        values = [s["rails_mw"][name] for s in samples if name in s.get("rails_mw", {})]
        if values:
            return name, values
    return None, []


def summarize(samples, start, end, images, peak_gpu_mhz=None):
    """Telemetry of one window [start, end] (time.time() seconds) in which ``images`` images were
    processed: means and extremes, energy per image (mJ) where an input rail is read, and the throttling
    flag with its reasons (see the module docstring). None without samples in the window."""
    window = [s for t, s in samples if start <= t <= end]
    if not window:
        return None
    gpu_mhz = [s["gpu_mhz"] for s in window if "gpu_mhz" in s]
    temps = [max(s["temps_c"].values()) for s in window if s.get("temps_c")]
    out = {"samples": len(window), "gpu_load_pct_mean": _mean([s["gpu_load_pct"] for s in window
                                                                if "gpu_load_pct" in s]),
           "gpu_mhz_min": min(gpu_mhz) if gpu_mhz else None, "gpu_mhz_max": max(gpu_mhz) if gpu_mhz else None,
           "emc_mhz_mean": _mean([s["emc_mhz"] for s in window if "emc_mhz" in s]),
           "temp_c_max": max(temps) if temps else None}
    rail, power = _first_rail(window, INPUT_RAILS)
    gpu_rail, gpu_power = _first_rail(window, GPU_RAILS)
    out["input_rail"], out["power_mw_mean"] = rail, _mean(power)
    out["gpu_rail"], out["gpu_power_mw_mean"] = gpu_rail, _mean(gpu_power)
    seconds = max(end - start, 0.0)
    out["energy_mj_per_image"] = (out["power_mw_mean"] * seconds / images) if power and images else None
    reasons = []
    peak = peak_gpu_mhz or out["gpu_mhz_max"]
    if gpu_mhz and peak and min(gpu_mhz) < THROTTLE_CLOCK_FRAC * peak:
        reasons.append("GPU clock fell to {} MHz (peak {} MHz)".format(min(gpu_mhz), peak))
    if temps and max(temps) >= THROTTLE_TEMP_C:
        reasons.append("temperature reached {:.1f} C".format(max(temps)))
    cpu_mhz = [min(s["cpu_mhz"]) for s in window if s.get("cpu_mhz")]
    out["cpu_mhz_min"] = min(cpu_mhz) if cpu_mhz else None
    if any(s.get("pi_throttled") for s in window):
        reasons.append("the Raspberry Pi firmware reports throttling (vcgencmd get_throttled)")
    out["throttled"], out["throttle_reasons"] = bool(reasons), reasons
    return out
