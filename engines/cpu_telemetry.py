"""CPU boards (Raspberry Pi, ARM64): the CPU clocks and the firmware's view of temperature and throttling,
added to each telemetry sample (:func:`engines.telemetry.read_sysfs_sample`) where the board exposes them.

* ``/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`` (kHz): ``cpu_mhz``, one per core;
* ``vcgencmd`` (Raspberry Pi firmware) where it is on PATH: ``measure_temp`` (``temp=47.2'C``) as
  ``temps_c["vcgencmd"]``, ``measure_clock arm`` (``frequency(48)=2400000000``) as ``arm_mhz``, and
  ``get_throttled`` (``throttled=0x50005``; bits 0-3: under-voltage, frequency capped, throttled, soft
  temperature limit, now) as ``pi_throttled``. Thermal zones are read by :mod:`engines.telemetry` itself.
"""

import glob
import re
import shutil
import subprocess

_VC_TEMP = re.compile(r"temp=(-?\d+(?:\.\d+)?)")
_VC_CLOCK = re.compile(r"frequency\(\d+\)=(\d+)")
_VC_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+)")


def parse_vcgencmd(temp="", clock="", throttled=""):
    """The outputs of ``vcgencmd measure_temp``, ``measure_clock arm`` and ``get_throttled`` -> a sample
    dict (keys absent where the text does not parse)."""
    out = {}
    m = _VC_TEMP.search(temp or "")
    if m:
        out["temps_c"] = {"vcgencmd": float(m.group(1))}
    m = _VC_CLOCK.search(clock or "")
    if m:
        out["arm_mhz"] = int(m.group(1)) // 1000000
    m = _VC_THROTTLED.search(throttled or "")
    if m:
        out["pi_throttled"] = int(m.group(1), 16) & 0xF != 0
    return out


def _vcgencmd(tool, *args):
    try:
        return subprocess.run([tool] + list(args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=2).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def read_cpu_sample(root="/sys/devices/system/cpu", vcgencmd=None):
    """``{cpu_mhz: [per core], arm_mhz, temps_c: {"vcgencmd": C}, pi_throttled}``, what is readable."""
    sample = {}
    clocks = []
    for path in sorted(glob.glob(root + "/cpu[0-9]*/cpufreq/scaling_cur_freq"),
                       key=lambda p: int(re.search(r"cpu(\d+)/", p).group(1))):
        try:
            with open(path) as f:
                clocks.append(int(f.read().strip()) // 1000)
        except (OSError, ValueError):
            continue
    if clocks:
        sample["cpu_mhz"] = clocks
    tool = vcgencmd if vcgencmd is not None else shutil.which("vcgencmd")
    if tool:
        sample.update(parse_vcgencmd(_vcgencmd(tool, "measure_temp"), _vcgencmd(tool, "measure_clock", "arm"),
                                     _vcgencmd(tool, "get_throttled")))
    return sample
