"""The CPU facts ``deploy`` records for the ONNX Runtime path (:func:`engines.deploy._deploy_onnxruntime`: the
CPU targets of the table, Raspberry Pi and ARM64 boards, and ``--backend onnxruntime``): cores, clocks and the
firmware's temperature and throttling where the board exposes them (:mod:`engines.cpu_telemetry`, thermal zones).
"""

import os


def cpu_info():
    """``{"cores", "cpu_mhz", "temps_c", "pi_throttled"}``; None where the board does not say."""
    from .telemetry import read_sysfs_sample

    sample = read_sysfs_sample() or {}
    return {"cores": os.cpu_count(), "cpu_mhz": sample.get("cpu_mhz"), "temps_c": sample.get("temps_c"),
            "pi_throttled": sample.get("pi_throttled")}
