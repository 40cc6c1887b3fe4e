"""JSON Schema of ``results.json``. Bump :data:`SCHEMA_VERSION` on any incompatible change."""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

_NUM = {"type": "number", "minimum": 0}  # every number of a report is >= 0 (and finite: see validate)
_OPT_NUM = {"type": ["number", "null"], "minimum": 0}
_OPT_STR = {"type": ["string", "null"]}

LATENCY_SCHEMA = {
    "type": ["object", "null"],
    "description": "latency statistics of one run of `batch` images, in ms (a trtexec log gives no n, "
                   "and p90 only from TensorRT 8.4 on)",
    "required": ["mean", "median", "min", "max"],
    "properties": {"n": {"type": "integer", "minimum": 1}, "mean": _NUM, "median": _NUM, "p90": _NUM,
                   "p95": _NUM, "p99": _NUM, "min": _NUM, "max": _NUM, "std": _NUM},
}

CANDIDATE_SCHEMA = {
    "type": "object",
    "required": ["label", "source", "kind", "role", "gmacs", "params", "top1", "accuracy_meaningful",
                 "latency_ms", "throughput_ips", "speedup_median", "speedup_mean", "kernel_efficiency", "times_ms"],
    "properties": {
        "label": {"type": "string"},
        "source": {"type": "string"},
        "kind": {"enum": ["onnx", "engine", "pruned", "timm", "measured"]},
        "role": {"enum": ["unpruned", "pruned", "reference", "unknown"]},
        "base_model": _OPT_STR,
        "preset": _OPT_STR,
        "gmacs": {**_OPT_NUM, "description": "multiply-accumulates per image / 1e9"},
        "params": {"type": ["integer", "null"]},
        "top1": {**_OPT_NUM, "description": "ImageNet top-1 accuracy in %, where known"},
        "accuracy_meaningful": {"type": ["boolean", "null"]},
        "notice": _OPT_STR,
        "settings": {"type": "object"},
        "latency_ms": LATENCY_SCHEMA,
        "predicted_ms": {**_OPT_NUM, "description": "latency predicted by the latency table the model was pruned "
                                                     "with (prune --target-latency/--target-speedup), where known"},
        "predicted_for": {"type": ["object", "null"],
                          "description": "the table's backend, precision, batch and threads: the prediction is for "
                                         "that setting"},
        "predicted_error": {**_OPT_NUM, "description": "measured median / predicted - 1"},
        "precision": {"enum": ["int8"], "description": "an INT8 row (--precision int8): the FP32 row's model "
                                                         "quantised with ONNX Runtime's Q/DQ placement"},
        "fp32_label": {**_OPT_STR, "description": "the label of the FP32 row this INT8 row was quantised from"},
        "quantization": {"type": ["object", "null"], "description": "quantizer, method, calib_images, qdq_nodes, "
                                                                    "gate (passed | skipped)"},
        "throughput_ips": {**_OPT_NUM, "description": "images/s = batch * 1000 / mean latency (ms)"},
        "speedup_median": {**_OPT_NUM, "description": "baseline median latency / this median latency"},
        "speedup_mean": {**_OPT_NUM, "description": "baseline mean latency / this mean latency"},
        "kernel_efficiency": {**_OPT_NUM,
                              "description": "speedup_median / (baseline GMACs / this GMACs); 1 = latency "
                                             "falls in proportion to MACs"},
        "times_ms": {"type": "array", "items": _NUM, "description": "per-run latencies in run order (ms)"},
    },
}

RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "snp-edge bench results",
    "type": "object",
    "required": ["schema_version", "tool", "created", "partial", "notice", "protocol", "environment", "candidates"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "tool": {"type": "string"},
        "created": {"type": "string"},
        "command": {"type": ["array", "null"], "items": {"type": "string"}},
        "partial": {"type": "boolean", "description": "true when interrupted before every run was made"},
        "notice": {**_OPT_STR, "description": "set when any accuracy figure is meaningless (random weights)"},
        "protocol": {
            "type": "object",
            "required": ["backend", "batch", "baseline", "interleaved"],
            "properties": {"backend": {"enum": ["ort", "torch", "trt"]},
                           "batch": {"type": "integer", "minimum": 1},
                           "baseline": {"type": "string"}, "interleaved": {"type": "boolean"}},
        },
        "environment": {"type": "object"},
        "candidates": {"type": "array", "minItems": 1, "items": CANDIDATE_SCHEMA},
    },
}


def validate(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` does not follow :data:`RESULTS_SCHEMA`, or holds a NaN
    or an infinity anywhere (JSON Schema's ``minimum`` lets NaN through)."""
    import jsonschema
    from snp_edge.engines.common.schema import check_finite_tree

    check_finite_tree(doc, "results", jsonschema.ValidationError)
    jsonschema.validate(doc, RESULTS_SCHEMA, cls=jsonschema.Draft202012Validator)
