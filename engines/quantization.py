"""INT8 bundles on the device: the manifest's ``quantization`` block, the engine precision it implies, and the
INT8 verify report. Pure Python 3.6 (numpy only where arrays are read).

A bundle made with ``snp-edge bundle --precision int8`` holds a Q/DQ ONNX (explicit quantisation) and, in
its manifest, ``quantization``::

    {precision: "int8", quantizer: "modelopt" | "ort", method: str, calib_images: int >= 1,
     fp32_outputs: relative path of the FP32 model's ONNX Runtime logits on the golden inputs (listed in files),
     gate: object (the host's INT8-against-FP32 gate report, free-form)}

``golden.outputs`` of such a bundle are the quantised model's ONNX Runtime logits: ``verify`` gates the
engine against them (:data:`INT8_TOLERANCE`) and reports its distance from the FP32 logits too
(:func:`engines.verify.fp32_distance`; this module imports no other engines module but errors and targets).

TensorRT builds an INT8 bundle with the INT8 and FP16 builder flags and no calibrator (the Q/DQ nodes carry
the scales; :func:`engines.trt_compat.set_int8_flags`); on an Orin's DLA, INT8 with GPU fallback.
"""

from .common.errors import EnginesError, ManifestError

QUANTIZERS = ("modelopt", "ort")
# INT8 engine against the quantised model's ONNX Runtime goldens: the same Q/DQ scales, so what differs is
# rounding order, kernel fusions and (TensorRT) FP16 in the unquantised layers: 5% of the logit scale, every
# golden top-1 kept, softmax probabilities within 0.05
INT8_TOLERANCE = (0.05, 0.99, 0.05)


def is_int8(manifest):
    return (manifest.get("quantization") or {}).get("precision") == "int8"


def ort_optimization(manifest):
    """ONNX Runtime's graph optimisation level for a bundle: "basic" (Q/DQ computed as written: ONNX Runtime
    as the reference of a TensorRT target's INT8 model, whose Q/DQ placement ONNX Runtime's int8 fusions are
    not made for) for an INT8 bundle of a TensorRT target, else "all" (a CPU target's INT8 runs ONNX
    Runtime's int8 kernels)."""
    from .common.targets import TARGETS

    spec = TARGETS.get(manifest.get("target"))
    return "basic" if is_int8(manifest) and spec is not None and spec.runtime == "tensorrt" else "all"


def engine_precision(manifest, precision):
    """The precision an engine of this bundle is built in: an INT8 bundle builds INT8 (its Q/DQ nodes decide;
    the FP16 default becomes int8, fp32 is refused); a float bundle refuses int8."""
    if is_int8(manifest):
        if precision in (None, "fp16", "int8"):
            return "int8"
        raise EnginesError(f"--precision {precision}: this bundle's ONNX is INT8 (Q/DQ nodes); it builds "
                           "with --precision int8 only (make an FP16 bundle without --precision int8)")
    if precision == "int8":
        raise EnginesError("--precision int8: this bundle's ONNX has no Q/DQ nodes; make an INT8 bundle with "
                           "snp-edge bundle --precision int8")
    return precision or "fp16"


def validate_quantization(m, relpath_check):
    """Check ``m["quantization"]`` (when present); ``relpath_check(obj, key, field)`` validates a relative
    path the way the manifest does. Returns the paths it names (for the files list)."""
    if "quantization" not in m:
        return []
    q = m["quantization"]
    if not isinstance(q, dict):
        raise ManifestError("manifest.json: field quantization: expected an object, got {!r}".format(q))
    checks = (("precision", ("int8",)), ("quantizer", QUANTIZERS))
    for key, allowed in checks:
        if q.get(key) not in allowed:
            raise ManifestError("manifest.json: field quantization.{}: expected one of {}, got {!r}".format(
                key, ", ".join(allowed), q.get(key)))
    if not isinstance(q.get("method"), str):
        raise ManifestError("manifest.json: field quantization.method: expected a string")
    n = q.get("calib_images")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ManifestError("manifest.json: field quantization.calib_images: expected an integer >= 1, got "
                            "{!r}".format(n))
    return [relpath_check(q, "fp32_outputs", "quantization.fp32_outputs")]
