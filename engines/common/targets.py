"""The device targets: one table, read by the host (export opset and parser checks, bundles, CLI choices, width
alignment) and by the device (batch profiles, workspace limits, builder memory, DLA, container images).

Adding a device is one :class:`DeviceTarget` entry here plus whatever is truly new for it. Batch sizes are in
images, workspace and memory in MiB. A target is a software stack (JetPack / TensorRT / Python) plus the
defaults of the modules it runs on; what differs between modules of one target (power modes, DLA cores
present) is read on the device (:mod:`.power_modes`, ``builder.num_DLA_cores``).
"""

from collections import OrderedDict, namedtuple

from .errors import EnginesError

DeviceTarget = namedtuple("DeviceTarget", [
    "name",               # "jetson-nano"
    "description",        # one line for help texts
    "trt_parser",         # ONNX parser rules the graph must satisfy: "trt8.2" | "trt8.5" | "trt10" (export/trt_ops.py)
    "tensorrt",           # TensorRT release the target ships, e.g. "8.2.1"
    "python",             # device Python, e.g. "3.6"
    "opset",              # ONNX opset exported for it
    "min_batch", "opt_batch", "max_batch",  # default optimization profile (images)
    "workspace_mib",      # default builder workspace
    "workspace_cap_mib",  # largest workspace the device can give the builder
    "builder_memory_mib",  # memory + swap the TensorRT builder wants free (deploy's preflight)
    "dockerfile",         # device Dockerfile, relative to docker/
    "run_script",         # docker/ script that runs a bundle stage in that image
    "image",              # the tag docs/scripts build it as
    "base_image",         # its FROM line
    "docker_gpu_flag",    # how containers reach the GPU: "--runtime nvidia" (Jetson) or "--gpus all"
    "tensor_cores",       # FP16 tensor cores
    "width_multiple",     # the width alignment pruning for this target defaults to (--round-to): 8 on FP16
                          # tensor cores (measured: docs/results/gpu-h100), 1 where alignment buys nothing
    "dla_cores",          # DLA cores the target's modules may have (0: none; the device reports its own count)
    "precisions",         # engine precisions it runs fast, e.g. ("fp32", "fp16", "int8"); --precision choices
    "quantizer",          # INT8 Q/DQ placement for its runtime (export/quantize.py): "modelopt" | "ort" | None
    "runtime",            # what runs the bundle: "tensorrt" (engines built on the device) | "onnxruntime"
])
# INT8: TensorRT explicit quantisation (Model Optimizer's Q/DQ placement) on Ampere tensor cores and Orin's DLA
_TRT_INT8 = dict(precisions=("fp32", "fp16", "int8"), quantizer="modelopt", runtime="tensorrt")
# CPU boards: ONNX Runtime's CPU provider runs the bundle (FP32, or INT8 with its own QDQ placement); no
# TensorRT, container or GPU fields; Raspberry Pi OS Bookworm ships Python 3.11
_CPU = dict(trt_parser=None, tensorrt=None, python="3.11", opset=17, min_batch=1, opt_batch=1, max_batch=8,
            workspace_mib=64, workspace_cap_mib=64, builder_memory_mib=0,  # workspace: unused by ONNX Runtime
            dockerfile=None, run_script=None, image=None,
            base_image=None, docker_gpu_flag=None, tensor_cores=False, width_multiple=1, dla_cores=0,
            precisions=("fp32", "int8"), quantizer="ort", runtime="onnxruntime")

# Jetson Orin modules are 8, 16, 32 or 64 GB of memory shared by CPU and GPU; the Orin defaults fit the 8 GB
# modules (Orin Nano 8GB, Orin NX 8GB): 2 GiB of builder workspace, at most 4 GiB. Bigger modules pass
# --max-batch / --workspace-mib.
_ORIN = dict(min_batch=1, opt_batch=1, max_batch=16, workspace_mib=2048, workspace_cap_mib=4096,
             builder_memory_mib=3072, docker_gpu_flag="--runtime nvidia", run_script="run-jetson.sh",
             tensor_cores=True, width_multiple=8)
_JETPACK6 = dict(trt_parser="trt10", tensorrt="10.3", python="3.10", opset=17, dockerfile="Dockerfile.jetson-orin",
                 image="snp-edge-jetson-orin:r36.4.0", base_image="nvcr.io/nvidia/l4t-jetpack:r36.4.0")

TARGETS = OrderedDict((t.name, t) for t in [
    DeviceTarget(
        name="jetson-nano", description="Jetson Nano, JetPack 4.6 (TensorRT 8.2, Python 3.6, Maxwell sm_53)",
        trt_parser="trt8.2", tensorrt="8.2.1", python="3.6", opset=13,
        # 4 GB LPDDR4 shared by CPU and GPU: keep the builder's scratch memory at or below 1 GiB
        min_batch=1, opt_batch=1, max_batch=8, workspace_mib=1024, workspace_cap_mib=1024, builder_memory_mib=1536,
        dockerfile="Dockerfile.jetson", run_script="run-jetson.sh", image="snp-edge-jetson:r32.7.1",
        base_image="nvcr.io/nvidia/l4t-base:r32.7.1", docker_gpu_flag="--runtime nvidia",
        tensor_cores=False, width_multiple=1, dla_cores=0,
        # Maxwell (sm_53) has no fast INT8 (no DP4A, no tensor cores): FP16 at most
        precisions=("fp32", "fp16"), quantizer=None, runtime="tensorrt"),
    DeviceTarget(
        name="jetson-orin", description="Jetson Orin NX / AGX Orin, JetPack 6.1+ (L4T R36.4, TensorRT 10.3, "
                                        "Python 3.10, Ampere sm_87, DLA)",
        dla_cores=2, **_ORIN, **_JETPACK6, **_TRT_INT8),
    DeviceTarget(
        name="jetson-orin-nano", description="Jetson Orin Nano, JetPack 6.1+ (L4T R36.4, TensorRT 10.3, "
                                             "Python 3.10, Ampere sm_87, no DLA)",
        dla_cores=0, **_ORIN, **_JETPACK6, **_TRT_INT8),
    DeviceTarget(
        # TensorRT 8.5 parses opsets up to 17 but LayerNormalization only from 8.6: opset 13, LayerNorm decomposed
        name="jetson-orin-jp5", description="Jetson Orin, JetPack 5.1 (L4T R35, TensorRT 8.5, Python 3.8, "
                                            "Ampere sm_87, DLA on Orin NX / AGX Orin)",
        trt_parser="trt8.5", tensorrt="8.5.2", python="3.8", opset=13, dockerfile="Dockerfile.jetson-orin-jp5",
        image="snp-edge-jetson-orin:r35.4.1", base_image="nvcr.io/nvidia/l4t-jetpack:r35.4.1", dla_cores=2,
        **_ORIN, **_TRT_INT8),
    DeviceTarget(
        name="rtx3090", description="RTX 3090 box, TensorRT 10.x container (Ampere sm_86)",
        trt_parser="trt10", tensorrt="10.8", python="3.12", opset=17,
        min_batch=1, opt_batch=64, max_batch=128, workspace_mib=4096, workspace_cap_mib=16384,
        builder_memory_mib=4096, dockerfile="Dockerfile.trt-x86", run_script="run-x86.sh",
        image="snp-edge-trt-x86:25.01", base_image="nvcr.io/nvidia/tensorrt:25.01-py3", docker_gpu_flag="--gpus all",
        tensor_cores=True, width_multiple=8, dla_cores=0, **_TRT_INT8),
    DeviceTarget(name="raspberry-pi-5", description="Raspberry Pi 5 (Cortex-A76), Raspberry Pi OS Bookworm 64-bit, "
                                                    "Python 3.11, ONNX Runtime aarch64 (CPU)", **_CPU),
    DeviceTarget(name="raspberry-pi-4", description="Raspberry Pi 4 (Cortex-A72), Raspberry Pi OS Bookworm 64-bit, "
                                                    "Python 3.11, ONNX Runtime aarch64 (CPU)", **_CPU),
    DeviceTarget(name="arm64-cpu", description="any ARM64 board, Python >= 3.6, ONNX Runtime on the CPU",
                 **_CPU),
])
TARGET_NAMES = tuple(TARGETS)


def get_target(name):
    """The :class:`DeviceTarget` called ``name``; :class:`EnginesError` naming the known ones otherwise."""
    if name not in TARGETS:
        raise EnginesError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    return TARGETS[name]


def resolve_target(target):
    """``target`` as a :class:`DeviceTarget`: a name is looked up once (:func:`get_target`), a DeviceTarget is
    passed through, so a command resolves its target once and hands the record down."""
    return target if isinstance(target, DeviceTarget) else get_target(target)


def check_precision(name, precision):
    """Refuse ``precision`` for target ``name`` where the target does not run it (``precisions`` in the
    table): :class:`EnginesError` (exit 2) naming what it runs and why. Returns ``precision``."""
    spec = resolve_target(name)
    name = spec.name
    if precision not in spec.precisions:
        why = {"int8": " (no fast INT8 on its GPU)" if spec.runtime == "tensorrt" else "",
               "fp16": " (its CPU runs FP32 or INT8)" if spec.runtime == "onnxruntime" else ""}.get(precision, "")
        raise EnginesError(f"--precision {precision}: {name} runs {', '.join(spec.precisions)} only{why}")
    return precision


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def width_multiple_for(names):
    """The width alignment every target in ``names`` gains from (the greatest common divisor of their
    ``width_multiple``; 1 for none): what ``--round-to`` defaults to when pruning for them. One target without
    tensor cores (the Nano: 1) keeps the exact widths, so the main job, which bundles for the Nano and the
    RTX 3090, prunes to the paper's preset as published."""
    multiple = 0
    for name in names:
        multiple = _gcd(multiple, resolve_target(name).width_multiple)
    return multiple or 1


def width_alignment(widths):
    """The largest integer dividing every width in ``widths`` (positive ints; zeros ignored): the alignment a
    model's GEMM dimensions have. 1 when ``widths`` is empty."""
    result = 0
    for w in widths:
        result = _gcd(result, int(w))
    return result or 1


def check_dla_request(name, core, precision="fp16"):
    """Refuse ``--dla-core core`` for target ``name`` where the target has no DLA, the core cannot exist on
    its modules, or the precision is not FP16 (DLA runs FP16 and INT8 only): :class:`EnginesError` (exit 2).
    ``core`` None (no DLA) is always fine."""
    if core is None:
        return None
    spec = resolve_target(name)
    name = spec.name
    if spec.dla_cores < 1:
        with_dla = [t.name for t in TARGETS.values() if t.dla_cores > 0]
        raise EnginesError(f"--dla-core: {name} has no DLA (targets with DLA: {', '.join(with_dla)}); build "
                           "without --dla-core")
    if not 0 <= core < spec.dla_cores:
        raise EnginesError("--dla-core {}: {} modules have at most {} DLA cores ({})".format(
            core, name, spec.dla_cores, ", ".join(str(i) for i in range(spec.dla_cores))))
    if precision not in ("fp16", "int8"):
        raise EnginesError(f"--dla-core: DLA runs FP16 (or INT8) only, not --precision {precision}")
    return core
