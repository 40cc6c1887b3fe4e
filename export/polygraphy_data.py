"""A bundle's golden data in Polygraphy's own JSON formats, and the ``polygraphy run`` lines that use them.

``golden/polygraphy_inputs.json`` is a list of feed dicts (one iteration: ``{input: (N, C, H, W)}``) and
``golden/polygraphy_outputs.json`` a ``RunResults`` (runner ``onnxrt-golden``, one iteration: ``{logits: (N,
classes)}``), both written with Polygraphy's own serialisation (:func:`polygraphy.json.save_json`,
``RunResults.save``), so ``polygraphy run --load-inputs/--load-outputs`` reads them as its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from snp_edge.engines.verify import TOLERANCES

INPUTS_FILE = "golden/polygraphy_inputs.json"
OUTPUTS_FILE = "golden/polygraphy_outputs.json"
RUNNER = "onnxrt-golden"  # the runner name the golden outputs are stored under


def write_polygraphy_golden(folder: Path, inputs: np.ndarray, outputs: np.ndarray, input_name: str = "input",
                            output_name: str = "logits") -> tuple[str, str]:
    """Write the golden ``inputs``/``outputs`` under ``folder`` in Polygraphy's formats; returns both paths."""
    from polygraphy.comparator import RunResults
    from polygraphy.json import save_json
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(G_LOGGER.ERROR):  # Polygraphy logs each save on stdout
        save_json([{input_name: np.ascontiguousarray(inputs, dtype=np.float32)}], str(folder / INPUTS_FILE),
                  description="golden inputs")
        results = RunResults()
        results.add([{output_name: np.ascontiguousarray(outputs, dtype=np.float32)}], runner_name=RUNNER)
        results.save(str(folder / OUTPUTS_FILE))
    return INPUTS_FILE, OUTPUTS_FILE


def fp16_tolerance(outputs: np.ndarray) -> float:
    """The absolute tolerance of the device FP16 check: the engines' own gate, ``atol_frac`` x logit scale
    (``engines/verify.py``), so Polygraphy and ``python3 -m engines verify`` judge alike."""
    scale = max(float(np.abs(outputs).max()), 1.0)
    return float(f"{TOLERANCES['fp16'].atol_frac * scale:.3g}")


def polygraphy_commands(onnx_file: str, input_shape: list[int], batch: int, outputs: np.ndarray,
                        input_name: str = "input") -> dict[str, str]:
    """``{"onnxrt": host line, "trt_fp16": device line}`` for the ONNX at ``onnx_file`` (relative to the bundle).

    The TensorRT line builds a dynamic-batch profile covering the golden batch and checks elementwise with
    ``--atol`` = the FP16 gate and ``--rtol 0`` (an element fails when its absolute error exceeds ``--atol``).
    """
    load = f"--load-inputs {INPUTS_FILE} --load-outputs {OUTPUTS_FILE}"
    dims = ",".join(str(d) for d in input_shape[1:])
    shapes = ""
    if input_shape[0] == -1:
        shapes = "".join(f" --trt-{k}-shapes {input_name}:[{n},{dims}]" for k, n in (("min", 1), ("opt", batch),
                                                                                      ("max", batch)))
    return {
        "onnxrt": f"polygraphy run {onnx_file} --onnxrt {load}",
        "trt_fp16": f"polygraphy run {onnx_file} --trt --fp16{shapes} {load} --atol {fp16_tolerance(outputs):g} "
                    "--rtol 0",
    }
