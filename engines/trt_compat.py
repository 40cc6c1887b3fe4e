"""Every TensorRT API difference this project meets, in one place, chosen by the installed version.

:func:`api_for_version` is a pure function of a version tuple, so the selection is tested without TensorRT.
The helpers below it take live TensorRT objects and branch on the :class:`TrtApi` they are given.

=====================  ============================  =========================================
item                   TensorRT 8.2 (Jetson Nano)    TensorRT 10.x
=====================  ============================  =========================================
network flags          EXPLICIT_BATCH (required)     0 (EXPLICIT_BATCH deprecated; gone in 11)
workspace              config.max_workspace_size     config.set_memory_pool_limit (8.4+)
FP16                   BuilderFlag.FP16              same; removed in 11 (strong typing only)
engine I/O             bindings, execute_async_v2    tensor names, execute_async_v3 (8.5+)
DLA builder/runtime    same API (below)              same API
trtexec DLA fallback   "Default DLA is enabled but   "Layer 'NAME' (TYPE): Unsupported on DLA.
log (8.2-8.4 / 8.5+)   layer NAME is not supported   Switching this layer's device type to GPU."
                       on DLA, falling back to GPU."
=====================  ============================  =========================================

DLA (Jetson Orin NX / AGX Orin): the same calls from 8.2 to 10.x: ``builder.num_DLA_cores``,
``config.default_device_type = DeviceType.DLA``, ``config.DLA_core``, ``BuilderFlag.GPU_FALLBACK``,
``config.can_run_on_DLA(layer)`` and, to load such an engine, ``runtime.DLA_core``. DLA runs FP16 or INT8
only and has no dynamic dimensions, so a DLA build uses a static batch (min = opt = max); layers it cannot
run fall back to the GPU, and their names are recorded in the engine's sidecar.

TensorRT 11 decision: there is no FP16 builder flag, so an FP16 engine comes only from an ONNX that already
carries FP16 types, built as a strongly-typed network. ``build`` does that when the manifest's input dtype is
float16, and otherwise refuses ``--precision fp16`` with a message saying to export an FP16 ONNX or to use
``--precision fp32``. We do not convert the graph on the device: which layers stay FP32 is a model decision
that belongs to the exporter (and is checked there against ONNX Runtime).
"""

import re
from collections import namedtuple

from .common.errors import EnginesError, MissingPrerequisite

TrtApi = namedtuple("TrtApi", [
    "version",               # tuple of ints, e.g. (8, 2, 1, 8)
    "explicit_batch_flag",   # create_network needs 1 << EXPLICIT_BATCH
    "workspace_api",         # "max_workspace_size" | "memory_pool_limit"
    "fp16_flag",             # BuilderFlag.FP16 exists
    "strongly_typed",        # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists
    "io_api",                # "bindings" (execute_async_v2) | "tensors" (execute_async_v3)
    "trtexec_workspace",     # "--workspace=MiB" | "--memPoolSize=workspace:MiBM"
    "trtexec_explicit_batch",  # trtexec accepts --explicitBatch
    "trtexec_percentiles",   # "single" (--percentile=99) | "list" (--percentile=90,95,99)
    "trtexec_layer_precisions",  # trtexec has --layerPrecisions / --precisionConstraints
    "export_times_warmups",  # --exportTimes JSON includes the warm-up iterations
    "trtexec_dla_fallback",  # how trtexec logs a layer falling back from DLA to the GPU: "default-dla" | "switching"
])


def parse_version(text):
    """A TensorRT version tuple from ``tensorrt.__version__`` ("8.2.1.8"), a Debian package version
    ("8.2.1-1+cuda10.2") or trtexec's banner tag ("v8201", "v100800")."""
    text = str(text).strip()
    tag = re.search(r"\bv(\d{4,6})\b", text)
    if tag:  # NV_TENSORRT_VERSION: MAJOR*1000 + MINOR*100 + PATCH up to 9.x, MAJOR*10000 + MINOR*100 + PATCH from 10
        n = int(tag.group(1))
        return (n // 10000, n // 100 % 100, n % 100) if n >= 10000 else (n // 1000, n // 100 % 10, n % 100)
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if not match:
        raise EnginesError(f"cannot read a TensorRT version from {text!r}")
    return tuple(int(p) for p in match.groups() if p is not None)


def version_key(version):
    """"MAJOR.MINOR.PATCH" of a TensorRT version (string or tuple): what engine compatibility and cache keys
    use, the same from the Python bindings ("8.2.1.8") and from trtexec's banner ("v8201")."""
    parts = parse_version(version) if isinstance(version, str) else tuple(version)
    return ".".join(str(p) for p in (tuple(parts) + (0, 0))[:3])


def api_for_version(version):
    """The :class:`TrtApi` for a version tuple (or string). Raises below 8.2, the oldest we support."""
    if isinstance(version, str):
        version = parse_version(version)
    major_minor = tuple(version[:2])
    if major_minor < (8, 2):
        raise EnginesError("TensorRT {} is too old: need 8.2 or newer".format(".".join(map(str, version))))
    return TrtApi(
        version=tuple(version),
        explicit_batch_flag=major_minor < (10, 0),
        workspace_api="max_workspace_size" if major_minor < (8, 4) else "memory_pool_limit",
        fp16_flag=major_minor < (11, 0),
        strongly_typed=major_minor >= (9, 0),
        io_api="bindings" if major_minor < (8, 5) else "tensors",
        trtexec_workspace="--workspace" if major_minor < (8, 4) else "--memPoolSize",
        trtexec_explicit_batch=major_minor < (10, 0),
        trtexec_percentiles="single" if major_minor < (8, 5) else "list",
        trtexec_layer_precisions=major_minor >= (8, 4),
        export_times_warmups=major_minor < (8, 5),
        trtexec_dla_fallback="default-dla" if major_minor < (8, 5) else "switching",
    )


def import_tensorrt():
    """The ``tensorrt`` module, or :class:`EnginesError` saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingPrerequisite(f"the TensorRT Python bindings do not import ({exc}): on a Jetson use the system "
                           "python3 or docker/run-jetson.sh; on x86 use docker/run-x86.sh") from None
    return tensorrt


def installed_api():
    """``(tensorrt module, TrtApi)`` for the installed TensorRT."""
    trt = import_tensorrt()
    return trt, api_for_version(trt.__version__)


# ---- builder ------------------------------------------------------------------------------------------------

def create_network(trt, api, builder, strongly_typed=False):
    """An empty network definition with the flags this version needs."""
    flags = 0
    if api.explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return builder.create_network(flags)


def set_int8_flags(trt, api, config):
    """An INT8 build of a Q/DQ network (explicit quantisation, no calibrator): ``BuilderFlag.INT8`` (required
    for Q/DQ networks by TensorRT 8.x; deprecated but accepted by 10.x, gone where the flag is gone) and
    ``BuilderFlag.FP16`` where it exists, so the unquantised layers (LayerNorm, Softmax, GELU) run in FP16."""
    flags = trt.BuilderFlag
    if hasattr(flags, "INT8"):
        config.set_flag(flags.INT8)
    if api.fp16_flag:
        config.set_flag(flags.FP16)


def set_workspace(trt, api, config, nbytes):
    """Limit the builder's scratch memory to ``nbytes``."""
    if api.workspace_api == "max_workspace_size":
        config.max_workspace_size = nbytes
    else:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)


def parser_errors(parser):
    """The ONNX parser's errors as one-line strings naming the node (index, and name where the version
    reports it)."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node_name = err.node_name() if hasattr(err, "node_name") else ""
        where = "node {}{}".format(err.node(), f" ({node_name})" if node_name else "")
        lines.append("{}: {}".format(where, " ".join(str(err.desc()).split())))
    return lines


# ---- DLA ----------------------------------------------------------------------------------------------------

_DLA_FALLBACK = {
    "default-dla": re.compile(r"Default DLA is enabled but layer (.+?) is not supported on DLA, falling back to GPU"),
    "switching": re.compile(r"Layer '(.+?)' \([A-Za-z_0-9]+\): Unsupported on DLA\. Switching this layer's device "
                            r"type to GPU"),
}


def check_dla_core(num_cores, core, module=None):
    """Refuse DLA core ``core`` where the module has ``num_cores`` (``builder.num_DLA_cores``):
    :class:`MissingPrerequisite` (exit 3) naming the module, or returns ``core``."""
    where = module or "this module"
    if num_cores < 1:
        raise MissingPrerequisite(f"--dla-core {core}: {where} has no DLA (TensorRT reports 0 DLA cores; the Orin "
                                  "Nano has none): build without --dla-core")
    if core >= num_cores:
        raise MissingPrerequisite("--dla-core {}: {} has {} DLA core{} ({}): pick one of them".format(
            core, where, num_cores, "" if num_cores == 1 else "s", ", ".join(str(i) for i in range(num_cores))))
    return core


def configure_dla(trt, builder, config, core, module=None):
    """Build for DLA core ``core`` with GPU fallback (after :func:`check_dla_core`)."""
    check_dla_core(builder.num_DLA_cores, core, module)
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def gpu_fallback_layers(config, network):
    """Names of the network's layers that cannot run on the configured DLA core (they run on the GPU)."""
    names = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not config.can_run_on_DLA(layer):
            names.append(layer.name)
    return names


def set_runtime_dla_core(runtime, core):
    """Load engines on DLA core ``core`` (``None``: a GPU-only engine, nothing to set)."""
    if core is not None:
        runtime.DLA_core = int(core)


def parse_dla_fallback(api, text):
    """The layer names trtexec's build log says fell back from DLA to the GPU, in order, each once."""
    names = []
    for match in _DLA_FALLBACK[api.trtexec_dla_fallback].finditer(text or ""):
        if match.group(1) not in names:
            names.append(match.group(1))
    return names


# ---- engine I/O -----------------------------------------------------------------------------------------------

IOTensor = namedtuple("IOTensor", "name is_input dtype shape")
IOTensor.__doc__ = "One engine input or output: name, is_input, numpy dtype, shape (-1 = dynamic)."


def io_tensors(trt, api, engine):
    """The engine's inputs and outputs as :class:`IOTensor` tuples, in engine order."""
    result = []
    if api.io_api == "bindings":
        for i in range(engine.num_bindings):
            result.append(IOTensor(engine.get_binding_name(i), engine.binding_is_input(i),
                                   trt.nptype(engine.get_binding_dtype(i)), tuple(engine.get_binding_shape(i))))
    else:
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            result.append(IOTensor(name, is_input, trt.nptype(engine.get_tensor_dtype(name)),
                                   tuple(engine.get_tensor_shape(name))))
    return result


def set_input_shape(api, engine, context, name, shape):
    """Set a dynamic input's shape on the execution context."""
    if api.io_api == "bindings":
        ok = context.set_binding_shape(engine.get_binding_index(name), tuple(shape))
    else:
        ok = context.set_input_shape(name, tuple(shape))
    if ok is False:
        raise EnginesError(f"input {name} cannot take shape {shape}: outside the engine's profile")


def tensor_shape(api, engine, context, name):
    """A tensor's shape on the context, after the input shapes are set."""
    if api.io_api == "bindings":
        return tuple(context.get_binding_shape(engine.get_binding_index(name)))
    return tuple(context.get_tensor_shape(name))


def execute_async(api, engine, context, addresses, stream_handle):
    """Enqueue one inference on ``stream_handle`` (int); ``addresses`` maps tensor name -> device pointer."""
    if api.io_api == "bindings":
        bindings = [0] * engine.num_bindings
        for name, ptr in addresses.items():
            bindings[engine.get_binding_index(name)] = int(ptr)
        ok = context.execute_async_v2(bindings=bindings, stream_handle=stream_handle)
    else:
        for name, ptr in addresses.items():
            context.set_tensor_address(name, int(ptr))
        ok = context.execute_async_v3(stream_handle=stream_handle)
    if not ok:
        raise EnginesError("TensorRT failed to enqueue the inference (see the TensorRT log above)")
