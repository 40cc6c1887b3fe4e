"""Runs NVIDIA Model Optimizer's ONNX PTQ in a process of its own (``python -m snp_edge.export.modelopt_worker
SRC DST CALIB.npy METHOD``): Model Optimizer patches ONNX Runtime's quantisation module on import
(``modelopt/onnx/quantization/ort_patching.py``), after which ONNX Runtime's own ``quantize_static`` fails in
the same process. Exit 3 when it does not import, 1 with the error's first line on stderr otherwise."""

from __future__ import annotations

import logging
import sys

import numpy as np


def main(argv: list[str]) -> int:
    src, dst, calib_path, method, input_name = argv
    try:
        from modelopt.onnx.quantization import quantize
    except ImportError as exc:
        print(f"NVIDIA Model Optimizer does not import ({str(exc).splitlines()[0]}): pip install "
              "'snp-edge[int8]' (Model Optimizer; or --quantizer ort)", file=sys.stderr)
        return 3
    logging.getLogger("modelopt").setLevel(logging.ERROR)
    calib = np.load(calib_path)
    try:
        quantize(src, quantize_mode="int8", calibration_data={input_name: calib}, calibration_method=method,
                 calibration_eps=["cpu"], op_types_to_quantize=["MatMul", "Gemm", "Conv"], high_precision_dtype="fp32",
                 output_path=dst, log_level="ERROR")
    except Exception as exc:  # Model Optimizer's and ONNX Runtime's own types
        print(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
