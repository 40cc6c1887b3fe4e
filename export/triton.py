"""The ``triton`` flavour: a Triton Inference Server model repository for the RTX target.

Layout (``triton/`` is the repository, ``--model-repository=$PWD/triton``)::

    triton/<name>/config.pbtxt          ONNX Runtime backend (TensorRT FP16 execution accelerator), dynamic
                                        batching, one GPU instance group
    triton/<name>/configs/plan.pbtxt    the same model as a TensorRT plan (``--model-config-name=plan``), once
                                        ``1/model.plan`` is built on the serving GPU with the server's TensorRT
    triton/<name>/1/model.onnx          the bundle's ONNX (same input form as model.onnx)
    triton/<name>/labels.txt            one label per line (Triton's classification extension)

The configurations are protobuf text of Triton's ``ModelConfig`` (``model_config.proto``); the tests parse
them with the schema tritonclient ships and check names, shapes and types against the ONNX.
"""

from __future__ import annotations

import re
import shutil

from .flavors import FlavorContext, FlavorResult

NAME = "triton"
MAX_QUEUE_DELAY_US = 100  # how long dynamic batching waits to fill a preferred batch
MOUNT = "/models"  # where the README's `docker run -v $PWD/triton:/models` puts the repository in the server
CACHE_DIR = "trt-cache"  # triton/<name>/trt-cache: ONNX Runtime's TensorRT engine cache (a declared writable place)
CACHE_PATTERNS = ["*.engine", "*.profile", "*.timing"]  # the TensorRT execution provider's engine, profile, timing cache


def model_name(handle_name: str) -> str:
    """A Triton model name (a directory name) from the model's name: letters, digits, ``_``, ``-``, ``.``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", handle_name).strip("._-") or "model"


def config_pbtxt(name: str, platform: str, max_batch: int, preferred_batch: int, chw: list[int], classes: int,
                 output: str, extra: str = "") -> str:
    """One ``ModelConfig`` in protobuf text format."""
    dims = ", ".join(str(d) for d in chw)
    return f'''name: "{name}"
platform: "{platform}"
max_batch_size: {max_batch}
input [
  {{
    name: "input"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ {dims} ]
  }}
]
output [
  {{
    name: "{output}"
    data_type: TYPE_FP32
    dims: [ {classes} ]
    label_filename: "labels.txt"
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {preferred_batch} ]
  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}
}}
instance_group [
  {{
    count: 1
    kind: KIND_GPU
  }}
]
{extra}'''


def write(ctx: FlavorContext) -> FlavorResult:
    spec, handle, main = ctx.target, ctx.handle, ctx.main
    name = model_name(handle.name)
    root = ctx.folder / NAME / name
    (root / "1").mkdir(parents=True)
    (root / "configs").mkdir()
    shutil.copyfile(main.path, root / "1" / "model.onnx")
    (root / "labels.txt").write_text("".join(f"{label}\n" for label in ctx.labels), encoding="utf-8")
    chw = [handle.in_chans, handle.img_size, handle.img_size]
    workspace = spec.workspace_mib << 20
    trt_accelerator = f'''optimization {{
  execution_accelerators {{
    gpu_execution_accelerator [
      {{
        name: "tensorrt"
        parameters {{ key: "precision_mode" value: "FP16" }}
        parameters {{ key: "max_workspace_size_bytes" value: "{workspace}" }}
        parameters {{ key: "trt_engine_cache_enable" value: "true" }}
        parameters {{ key: "trt_engine_cache_path" value: "{MOUNT}/{name}/{CACHE_DIR}" }}
      }}
    ]
  }}
}}
'''
    common = (name, spec.max_batch, spec.opt_batch, chw, handle.num_classes, main.output)
    (root / "config.pbtxt").write_text(config_pbtxt(common[0], "onnxruntime_onnx", *common[1:], extra=trt_accelerator))
    (root / "configs" / "plan.pbtxt").write_text(
        config_pbtxt(common[0], "tensorrt_plan", *common[1:], extra='default_model_filename: "model.plan"\n'))
    rel = f"{NAME}/{name}"
    shapes = "x".join(str(d) for d in chw)
    trtexec = (f"trtexec --onnx={rel}/1/model.onnx --saveEngine={rel}/1/model.plan --fp16 "
               f"--minShapes=input:{spec.min_batch}x{shapes} --optShapes=input:{spec.opt_batch}x{shapes} "
               f"--maxShapes=input:{spec.max_batch}x{shapes} --memPoolSize=workspace:{spec.workspace_mib}M")
    server = (f"docker run --rm --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD/triton:{MOUNT} "
              f"nvcr.io/nvidia/tritonserver:25.01-py3 tritonserver --model-repository={MOUNT}")
    readme = f"""## Triton Inference Server ({spec.name})

`{rel}/` is a model repository entry: `config.pbtxt` serves `1/model.onnx` with the ONNX Runtime backend and
its TensorRT execution accelerator in FP16, dynamic batching (preferred batch {spec.opt_batch}, at most
{spec.max_batch}, {MAX_QUEUE_DELAY_US} µs queue delay) and one instance on the GPU, with the execution provider's engine cache on
(`trt_engine_cache_path` {MOUNT}/{name}/{CACHE_DIR}, i.e. `{rel}/{CACHE_DIR}/`, a writable place the manifest
declares), so a restarted server loads its engines instead of building them again; `labels.txt` names the classes
for Triton's classification extension. Input `input` {chw} float32 (batch dimension added by Triton) holds
{main.input_form.describe()}; output `{main.output}` [{handle.num_classes}].

```bash
{server}
curl -s localhost:8000/v2/models/{name}/config        # the configuration Triton loaded
```

To serve a TensorRT plan instead, build it with the TensorRT of the server's release (a plan only loads on
the TensorRT version and GPU it was built with: use the TensorRT container of the same NGC release, 25.01
for both here) and select `configs/plan.pbtxt`:

```bash
docker run --rm --gpus all -v $PWD:/b -w /b nvcr.io/nvidia/tensorrt:25.01-py3 {trtexec}
{server} --model-config-name=plan
```
"""
    manifest = {"path": NAME, "onnx": f"{rel}/1/model.onnx", "model_name": name,
                "input": {"name": "input", "shape": [-1, *chw], "normalization": main.input_form.to_dict()},
                "output": {"name": main.output, "shape": [-1, handle.num_classes]},
                "configs": [f"{rel}/config.pbtxt", f"{rel}/configs/plan.pbtxt"]}
    writable = {f"{rel}/{CACHE_DIR}": CACHE_PATTERNS, f"{rel}/1": ["model.plan"]}  # EP cache; the README's trtexec plan
    return FlavorResult(manifest, readme, [f"triton: model repository {rel} (config.pbtxt, configs/plan.pbtxt)"],
                        writable=writable)
