"""The TensorRT builder: a bundle's ONNX -> serialized engine (``.engine``) plus its sidecar JSON.

One profile (min/opt/max NCHW shapes), FP16 (or FP32 with TF32 off), a workspace limit, and a timing cache
file that is loaded when present and saved after every build. ``fp32_norms`` pins the LayerNorm layers to
FP32 (FP16 LayerNorm can overflow after attention); ``fp32_softmax`` does the same for softmax layers.
``dla_core`` builds for a DLA core of a Jetson Orin NX / AGX Orin with GPU fallback: the layers the DLA cannot
run stay on the GPU and their names go into the sidecar (``build_flags.dla.gpu_fallback_layers``).

Engines go to ``CACHE_DIR/<cache key>.engine``; a second build with the same key reuses the file.
"""

import hashlib
import os
import re
import time
from collections import namedtuple

from . import trt_compat
from .common.errors import EnginesError
from .common.fileio import write_bytes_atomic
from .envinfo import device_identity
from .manifest import sha256_file
from .profiles import MIB, profile_to_dict
from .sidecar import (
    cache_key,
    check_compatible,
    check_signed,
    precision_label,
    read_sidecar,
    slug,
    write_sidecar,
)

DEFAULT_CACHE_DIR = "trt-cache"  # relative to the bundle

# TensorRT's ONNX parser names each layer after the ONNX node it comes from; a node that becomes several
# layers gives the others the node's name plus "_<n>". The manifest lists the nodes to pin (onnx.fp32_nodes,
# found on the host by export/cleanup.py's one LayerNorm matcher).
_PARSER_SUFFIX = re.compile(r"_\d+$")

BuildResult = namedtuple("BuildResult", "engine_path sidecar reused")


def select_fp32_layers(layers, node_names):
    """Indices of the layers to pin to FP32: those made from the ONNX nodes ``node_names`` (a layer named like
    the node, or like it plus TensorRT's ``_<n>`` suffix). ``layers``: sequence of ``(name, type name, float
    output)``, e.g. ``("/blocks.0/norm1/ReduceMean", "REDUCE", True)``. Layers with non-float outputs (shape
    arithmetic) are never pinned."""
    wanted = set(node_names)
    return [i for i, (name, _type, float_out) in enumerate(layers)
            if float_out and (name in wanted or _PARSER_SUFFIX.sub("", name) in wanted)]


def fp32_node_names(manifest, fp32_norms=False, fp32_softmax=False):
    """The ONNX node names to pin: the manifest's ``onnx.fp32_nodes`` norms and/or softmax lists."""
    nodes = manifest["onnx"].get("fp32_nodes") or {}
    if (fp32_norms or fp32_softmax) and not nodes:
        raise EnginesError("--fp32-norms/--fp32-softmax need the node lists of onnx.fp32_nodes in manifest.json: "
                           "rebuild the bundle with snp-edge >= 0.2")
    return (list(nodes.get("norms", [])) if fp32_norms else []) + (list(nodes.get("softmax", [])) if fp32_softmax else [])


def build_mode(api, precision, onnx_dtype, fp32_norms=False, fp32_softmax=False):
    """How to build: "fp16-flag" (BuilderFlag.FP16), "strongly-typed" (the ONNX's own FP16 types;
    TensorRT >= 10 with a float16 ONNX input, the only FP16 path on TensorRT 11) or "fp32"."""
    if precision == "int8":
        return "int8-qdq"  # explicit quantisation: the Q/DQ nodes carry the scales, no calibrator
    if precision == "fp32":
        if onnx_dtype == "float16":
            raise EnginesError("the bundle's ONNX is float16: it builds only with --precision fp16")
        return "fp32"
    if onnx_dtype == "float16" and api.strongly_typed:
        if fp32_norms or fp32_softmax:
            raise EnginesError("--fp32-norms/--fp32-softmax do not apply to a strongly-typed build: the float16 "
                               "ONNX's own casts decide which layers run in FP32")
        return "strongly-typed"
    if not api.fp16_flag:
        raise EnginesError("TensorRT {} has no FP16 builder flag (strong typing only): export a float16 ONNX, "
                           "or build with --precision fp32".format(".".join(map(str, api.version))))
    return "fp16-flag"


def _layer_table(trt, network):
    float_types = (trt.float32, trt.float16)
    table = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        float_out = layer.num_outputs > 0 and all(
            layer.get_output(j).dtype in float_types for j in range(layer.num_outputs))
        table.append((layer.name, str(layer.type).split(".")[-1], float_out))
    return table


def _pin_fp32(trt, network, indices):
    for i in indices:
        layer = network.get_layer(i)
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)


def _parse_onnx(trt, api, builder, logger, onnx_path, strongly_typed):
    network = trt_compat.create_network(trt, api, builder, strongly_typed)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):
        errors = trt_compat.parser_errors(parser) or ["no details"]
        raise EnginesError("TensorRT cannot parse {}: {}{}".format(
            onnx_path, errors[0], f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))
    return network, parser


def _load_timing_cache(config, path):
    data = b""
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        raise EnginesError(f"timing cache {path} does not match this TensorRT version or GPU: delete it or pass "
                           "another --timing-cache")


def build_engine(onnx_path, profile, mode, fp32_nodes=(), timing_cache=None, verbose=False, dla_core=None):
    """Build ``onnx_path`` with ``profile`` in ``mode`` (see :func:`build_mode`), pinning the layers of the ONNX
    nodes ``fp32_nodes`` to FP32, on DLA core ``dla_core`` (None: GPU only); returns ``(engine bytes, info)``
    where info has ``build_time_s`` (wall s), ``pinned_fp32_layers`` (names) and ``gpu_fallback_layers`` (names
    of the layers the DLA cannot run; None without ``dla_core``)."""
    trt, api = trt_compat.installed_api()
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # the parser owns the ONNX weights the network points to: it must outlive the build
    network, parser = _parse_onnx(trt, api, builder, logger, onnx_path, mode == "strongly-typed")
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if names != [profile.input_name]:
        raise EnginesError(f"the ONNX inputs are {names}, the manifest says [{profile.input_name!r}]")

    config = builder.create_builder_config()
    trt_compat.set_workspace(trt, api, config, profile.workspace_bytes)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(profile.input_name, profile.min_shape, profile.opt_shape, profile.max_shape)
    config.add_optimization_profile(opt_profile)
    if mode == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 means FP32: TF32 rounds to a 10-bit mantissa
    if mode == "fp16-flag":
        config.set_flag(trt.BuilderFlag.FP16)
    if mode == "int8-qdq":
        trt_compat.set_int8_flags(trt, api, config)
    table = _layer_table(trt, network)
    pinned = select_fp32_layers(table, fp32_nodes) if mode == "fp16-flag" else []
    if fp32_nodes and mode == "fp16-flag" and not pinned:
        raise EnginesError(f"--fp32-norms/--fp32-softmax matched none of the {len(table)} layers by the "
                           f"{len(fp32_nodes)} node names in manifest.json (first: {fp32_nodes[0]!r})")
    if pinned:
        _pin_fp32(trt, network, pinned)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    fallback = None
    if dla_core is not None:
        from .envinfo import read_text
        from .power_modes import DEVICE_TREE_MODEL

        trt_compat.configure_dla(trt, builder, config, dla_core, read_text(DEVICE_TREE_MODEL))
        fallback = trt_compat.gpu_fallback_layers(config, network)
    _load_timing_cache(config, timing_cache)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_time_s = time.perf_counter() - start
    if serialized is None:
        raise EnginesError(f"TensorRT failed to build {onnx_path} (see the TensorRT log above)")
    if timing_cache:
        write_bytes_atomic(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    del parser  # now the weights may go
    return bytes(memoryview(serialized)), {"build_time_s": round(build_time_s, 3),
                                           "pinned_fp32_layers": [table[i][0] for i in pinned],
                                           "gpu_fallback_layers": fallback}


def default_timing_cache(cache_dir, identity):
    """``CACHE_DIR/timing_<gpu>_trt<version>.cache``: timing caches are tied to GPU and TensorRT version."""
    return os.path.join(cache_dir, "timing_{}_trt{}.cache".format(
        slug(identity["gpu_name"]), slug(identity["trt_version"])))


def engine_path_for(manifest, profile, label, cache_dir, identity, dla_core=None):
    """Where the engine for this bundle, profile, precision label, DLA core and machine lives in ``cache_dir``."""
    onnx_sha = manifest["files"][manifest["onnx"]["file"]]
    key = cache_key(onnx_sha, identity["trt_version"], identity["gpu_name"], label, profile, dla_core)
    return os.path.join(cache_dir, key + ".engine")


def reusable(engine_path, identity):
    """The sidecar of ``engine_path`` when that engine can be reused here (compatible, signed with this device's
    engine key, bytes unchanged)."""
    if not os.path.isfile(engine_path):
        return None
    try:
        sidecar = read_sidecar(engine_path)
        check_compatible(sidecar, identity)
        check_signed(sidecar, engine_path)
    except EnginesError:
        return None
    return sidecar if sha256_file(engine_path) == sidecar["engine_sha256"] else None


def dla_flags(dla_core, fallback_layers):
    """``build_flags.dla`` of a sidecar: None for a GPU engine."""
    if dla_core is None:
        return None
    return {"core": dla_core, "gpu_fallback": True, "gpu_fallback_layers": fallback_layers}


def build_bundle(bundle_dir, manifest, profile, precision="fp16", fp32_norms=False, fp32_softmax=False,
                 cache_dir=None, timing_cache=None, force=False, verbose=False, dla_core=None):
    """Build (or reuse, unless ``force``) the engine for a bundle; returns a :class:`BuildResult`. The caller
    checks the bundle first (:func:`engines.manifest.open_bundle`, as every entry point does) and the DLA
    request against the target (:func:`engines.common.targets.check_dla_request`)."""
    label = precision_label(precision, fp32_norms, fp32_softmax)
    _, api = trt_compat.installed_api()
    mode = build_mode(api, precision, manifest["onnx"]["input"]["dtype"], fp32_norms, fp32_softmax)
    identity = device_identity()
    cache_dir = cache_dir or os.path.join(bundle_dir, DEFAULT_CACHE_DIR)
    engine_path = engine_path_for(manifest, profile, label, cache_dir, identity, dla_core)
    sidecar = None if force else reusable(engine_path, identity)
    if sidecar is not None:
        return BuildResult(engine_path, sidecar, True)

    timing_cache = timing_cache or default_timing_cache(cache_dir, identity)
    onnx_path = os.path.join(bundle_dir, manifest["onnx"]["file"])
    data, info = build_engine(onnx_path, profile, mode, fp32_node_names(manifest, fp32_norms, fp32_softmax),
                              timing_cache, verbose, dla_core)
    flags = {"mode": mode, "fp32_norms": fp32_norms, "fp32_softmax": fp32_softmax,
             "workspace_mib": profile.workspace_bytes // MIB, "timing_cache": timing_cache,
             "pinned_fp32_layers": info["pinned_fp32_layers"],
             "dla": dla_flags(dla_core, info["gpu_fallback_layers"])}
    sidecar = make_sidecar(engine_path, hashlib.sha256(data).hexdigest(), identity, manifest, label, profile,
                           flags, info["build_time_s"], "tensorrt", dla_core)
    write_bytes_atomic(engine_path, data)
    sidecar = write_sidecar(engine_path, sidecar)
    return BuildResult(engine_path, sidecar, False)


def make_sidecar(engine_path, engine_sha256, identity, manifest, label, profile, build_flags, build_time_s,
                 builder, dla_core=None):
    """The sidecar dict of a freshly built engine (see :mod:`engines.sidecar`), for either builder."""
    return {
        "sidecar_version": 1,
        "engine_file": os.path.basename(engine_path),
        "engine_sha256": engine_sha256,
        "trt_version": identity["trt_version"],
        "gpu_name": identity["gpu_name"],
        "compute_capability": identity["compute_capability"],
        "onnx_sha256": manifest["files"][manifest["onnx"]["file"]],
        "precision": label,
        "profile": profile_to_dict(profile),
        "dla_core": dla_core,
        "build_flags": build_flags,
        "build_time_s": build_time_s,
        "builder": builder,
        "target": manifest["target"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cache_key": os.path.basename(engine_path)[:-len(".engine")],
    }
