"""``deploy`` for the CPU targets (``runtime == "onnxruntime"`` in the target table: Raspberry Pi, ARM64
boards): no TensorRT, no GPU, no engine. Steps after the bundle check (:func:`engines.deploy.run_deploy`):

1. onnxruntime: it imports, its version and CPU provider;
2. cpu: cores, clocks and the firmware's temperature and throttling where the board exposes them
   (:mod:`engines.cpu_telemetry`, thermal zones);
3. verify: preprocessing, logits and top-k on the golden data with the ONNX Runtime backend (an INT8 bundle
   runs ONNX Runtime's int8 kernels and is gated with the int8 tolerance).
"""

import os

from .errors import VerificationFailed


def check_onnxruntime():
    from .ort import import_onnxruntime

    ort = import_onnxruntime()
    return {"onnxruntime": ort.__version__, "providers": ort.get_available_providers()}


def cpu_info():
    from .telemetry import read_sysfs_sample

    sample = read_sysfs_sample() or {}
    return {"cores": os.cpu_count(), "cpu_mhz": sample.get("cpu_mhz"), "temps_c": sample.get("temps_c"),
            "pi_throttled": sample.get("pi_throttled")}


def run_cpu_deploy(args, deployment, manifest):
    """The CPU steps (module docstring) for a bundle already checked by the ``bundle`` step."""
    from .inference import make_backend
    from .verify import tolerance_for, verify_bundle_outputs

    deployment.step("onnxruntime", check_onnxruntime)
    deployment.step("cpu", cpu_info)

    def verify():
        backend = make_backend("onnxruntime", args.bundle, manifest, threads=getattr(args, "threads", None))
        try:
            info = backend.describe()
            report = verify_bundle_outputs(args.bundle, manifest, backend, tolerance_for(info["precision"]))
        finally:
            backend.close()
        if not report["passed"]:
            raise VerificationFailed("verification failed: " + report["failures"][0])
        return {"backend": "onnxruntime", "precision": info["precision"],
                "logits_max_abs_err": report["logits"]["max_abs_err"],
                "preprocessing_max_abs_err": (report["preprocessing"] or {}).get("max_abs_err"),
                "top_k_max_prob_err": (report["top_k"] or {}).get("max_prob_err"),
                "fp32_distance": report.get("fp32_distance")}

    deployment.step("verify", verify)
