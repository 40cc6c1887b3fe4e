"""The device targets: one table, read by the host (export opset and parser checks, bundles, CLI choices) and by
the device (batch profiles, workspace limits, container images).

Adding a device is one :class:`DeviceTarget` entry here plus whatever is truly new for it. Batch sizes are in
images, workspace in MiB.
"""

from collections import OrderedDict, namedtuple

from .errors import EnginesError

DeviceTarget = namedtuple("DeviceTarget", [
    "name",               # "jetson-nano"
    "description",        # one line for help texts
    "trt_parser",         # ONNX parser rules the graph must satisfy: "trt8.2" | "trt10" (see export/trt_ops.py)
    "tensorrt",           # TensorRT release the target ships, e.g. "8.2.1"
    "python",             # device Python, e.g. "3.6"
    "opset",              # ONNX opset exported for it
    "min_batch", "opt_batch", "max_batch",  # default optimization profile (images)
    "workspace_mib",      # default builder workspace
    "workspace_cap_mib",  # largest workspace the device can give the builder
    "dockerfile",         # device Dockerfile, relative to docker/
    "run_script",         # docker/ script that runs a bundle stage in that image
    "image",              # the tag docs/scripts build it as
    "base_image",         # its FROM line
    "docker_gpu_flag",    # how containers reach the GPU: "--runtime nvidia" (JetPack 4) or "--gpus all"
    "tensor_cores",       # FP16 tensor cores (widths in multiples of 8 run faster)
    "dla_cores",          # DLA cores on the module (0: none)
])

TARGETS = OrderedDict((t.name, t) for t in [
    DeviceTarget(
        name="jetson-nano", description="Jetson Nano, JetPack 4.6 (TensorRT 8.2, Python 3.6, Maxwell sm_53)",
        trt_parser="trt8.2", tensorrt="8.2.1", python="3.6", opset=13,
        # 4 GB LPDDR4 shared by CPU and GPU: keep the builder's scratch memory at or below 1 GiB
        min_batch=1, opt_batch=1, max_batch=8, workspace_mib=1024, workspace_cap_mib=1024,
        dockerfile="Dockerfile.jetson", run_script="run-jetson.sh", image="snp-edge-jetson:r32.7.1",
        base_image="nvcr.io/nvidia/l4t-base:r32.7.1", docker_gpu_flag="--runtime nvidia",
        tensor_cores=False, dla_cores=0),
    DeviceTarget(
        name="rtx3090", description="RTX 3090 box, TensorRT 10.x container (Ampere sm_86)",
        trt_parser="trt10", tensorrt="10.8", python="3.12", opset=17,
        min_batch=1, opt_batch=64, max_batch=128, workspace_mib=4096, workspace_cap_mib=16384,
        dockerfile="Dockerfile.trt-x86", run_script="run-x86.sh", image="snp-edge-trt-x86:25.01",
        base_image="nvcr.io/nvidia/tensorrt:25.01-py3", docker_gpu_flag="--gpus all",
        tensor_cores=True, dla_cores=0),
])
TARGET_NAMES = tuple(TARGETS)


def get_target(name):
    """The :class:`DeviceTarget` called ``name``; :class:`EnginesError` naming the known ones otherwise."""
    if name not in TARGETS:
        raise EnginesError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    return TARGETS[name]
