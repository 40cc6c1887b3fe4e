"""The sidecar JSON beside every engine (``NAME.engine`` -> ``NAME.engine.json``), compatibility checks and
engine cache keys.

Sidecar fields: ``sidecar_version``, ``engine_file``, ``engine_sha256``, ``trt_version``, ``gpu_name``,
``compute_capability`` ("5.3"), ``onnx_sha256``, ``precision`` (see :func:`precision_label`), ``profile``
(:func:`engines.profiles.profile_to_dict`), ``build_flags``, ``build_time_s`` (wall seconds of the build),
``target``, ``created`` (ISO-8601 UTC), ``cache_key``, ``builder`` ("tensorrt": the Python builder, or
"trtexec" with its command line in ``build_flags.argv``), ``dla_core`` (the DLA core the engine runs on, None
for a GPU engine; absent before 0.3) and, for a DLA engine, ``build_flags.dla``: ``{core, gpu_fallback: true,
gpu_fallback_layers: [layer names that run on the GPU]}``. Both builders write the same fields and use the
same cache key, so either's engine is found and reused by the other.

An engine runs only with the TensorRT version and GPU model it was built with, so :func:`check_compatible`
refuses any difference in those three identity fields before the engine is deserialized.
"""

import hashlib
import json
import os
import re

from .errors import EnginesError, IncompatibleEngine
from .fileio import read_json, write_json_atomic
from .trt_compat import version_key

SIDECAR_VERSION = 1
IDENTITY_FIELDS = ("trt_version", "gpu_name", "compute_capability")
REQUIRED_FIELDS = ("sidecar_version", "engine_file", "engine_sha256", "onnx_sha256", "precision", "profile") \
    + IDENTITY_FIELDS


def sidecar_path(engine_path):
    """``model.engine`` -> ``model.engine.json``."""
    return engine_path + ".json"


def precision_label(precision, fp32_norms=False, fp32_softmax=False):
    """"fp16", "fp16-fp32norms", "fp16-fp32norms-fp32softmax", "fp32", ...: what the engine computes in."""
    if precision not in ("fp16", "fp32", "int8"):
        raise EnginesError(f"--precision must be fp16, fp32 or int8, got {precision!r}")
    parts = [precision]
    if precision == "fp16" and fp32_norms:
        parts.append("fp32norms")
    if precision == "fp16" and fp32_softmax:
        parts.append("fp32softmax")
    return "-".join(parts)


def slug(text):
    """Lowercase, filename-safe: "NVIDIA Tegra X1" -> "nvidia-tegra-x1"."""
    return re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-") or "unknown"


def cache_key(onnx_sha256, trt_version, gpu_name, precision, profile, dla_core=None):
    """A deterministic, filename-safe key for an engine: the same ONNX, TensorRT version, GPU, precision
    label, profile (a :class:`~engines.profiles.Profile`) and DLA core (None: GPU only) always give the same
    key, any change a new one. Readable prefix plus a 12-hex digest of all inputs. The TensorRT version counts
    as MAJOR.MINOR.PATCH, so the Python builder and trtexec (whose banner has no build number) share keys.
    GPU engines keep the keys they had before DLA existed here."""
    trt_version = version_key(trt_version)
    shapes = [list(profile.min_shape), list(profile.opt_shape), list(profile.max_shape)]
    fields = [onnx_sha256, str(trt_version), gpu_name, precision, profile.input_name, shapes]
    if dla_core is not None:
        fields.append({"dla_core": int(dla_core)})
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    dla = "" if dla_core is None else f"_dla{int(dla_core)}"
    return f"{onnx_sha256[:8]}_{slug(gpu_name)}_trt{slug(trt_version)}_{precision}{dla}_b{profile.min_shape[0]}-{profile.opt_shape[0]}-{profile.max_shape[0]}_{digest}"


def write_sidecar(engine_path, data):
    """Write the sidecar for ``engine_path`` atomically."""
    write_json_atomic(sidecar_path(engine_path), data)


def read_sidecar(engine_path):
    """The sidecar dict for ``engine_path``; :class:`EnginesError` when missing, unreadable or incomplete."""
    path = sidecar_path(engine_path)
    if not os.path.isfile(path):
        raise EnginesError(f"{engine_path} has no sidecar {os.path.basename(path)}: rebuild it with `python3 -m engines build`")
    data = read_json(path, EnginesError)
    missing = [k for k in REQUIRED_FIELDS if k not in data] if isinstance(data, dict) else ["(object)"]
    if missing:
        raise EnginesError(f"{path}: missing field {missing[0]}")
    return data


def _describe(info):
    return "TensorRT {} on {} (compute capability {})".format(
        info.get("trt_version"), info.get("gpu_name"), info.get("compute_capability"))


def check_compatible(sidecar, runtime_info):
    """Raise :class:`IncompatibleEngine` unless TensorRT version, GPU name and compute capability in
    ``runtime_info`` equal the sidecar's. Both are dicts with the :data:`IDENTITY_FIELDS`."""
    def same(key):
        if key == "trt_version":
            try:
                return version_key(str(sidecar.get(key))) == version_key(str(runtime_info.get(key)))
            except EnginesError:
                return False
        return str(sidecar.get(key)) == str(runtime_info.get(key))

    diffs = [k for k in IDENTITY_FIELDS if not same(k)]
    if diffs:
        raise IncompatibleEngine("engine {} was built with {}, this machine has {} ({} differ{}): rebuild it "
                                 "here with `python3 -m engines build`".format(
                                     sidecar.get("engine_file"), _describe(sidecar), _describe(runtime_info),
                                     ", ".join(diffs), "s" if len(diffs) == 1 else ""))
