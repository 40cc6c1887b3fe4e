"""The ``deepstream`` flavour: a Gst-nvinfer primary classifier (``deepstream/``).

nvinfer preprocesses every pixel as ``y = net-scale-factor * (x - offsets[c])`` with ``x`` in 0..255 and ONE
scale for all channels, so timm's per-channel std cannot be expressed. The flavour's ONNX therefore takes
0..255 RGB with the whole normalisation folded into the patch embedding, and the configuration is exactly
``net-scale-factor=1``, ``offsets=0;0;0`` (:func:`nvinfer_preprocess` derives both from the input form and
refuses a form nvinfer cannot express). Its head is a softmax (output ``probs``): nvinfer's classifier
parser reads probabilities and compares the best with ``classifier-threshold``.

Files: ``model.onnx`` (dynamic batch), ``config_infer_primary.txt``, ``labels.txt`` in DeepStream's classifier
format (one line per output layer, labels separated by ``;``).
"""

from __future__ import annotations

from snp_edge.errors import SnpEdgeError

from .flavors import FlavorContext, FlavorResult, export_for
from .normalize import InputForm

NAME = "deepstream"
CONFIG_FILE = "config_infer_primary.txt"
NETWORK_MODE_FP16 = 2   # nvinfer network-mode: 0 FP32, 1 INT8, 2 FP16
NETWORK_TYPE_CLASSIFIER = 1
MODEL_COLOR_RGB = 0     # model-color-format: 0 RGB, 1 BGR, 2 GRAY
CLASSIFIER_THRESHOLD = 0.0  # attach the top-1 label whatever its probability; raise it to drop unsure ones


def nvinfer_preprocess(form: InputForm) -> tuple[float, list[float]]:
    """(net-scale-factor, offsets) with ``nsf * (x - offsets_c) == (x / 255 * pixel_scale - mean_c) / std_c``
    for every 0..255 pixel ``x``: ``nsf = pixel_scale / (255 std)``, ``offsets_c = 255 mean_c / pixel_scale``.
    Refused when the std differs between channels (nvinfer has one scale)."""
    scales = {form.pixel_scale / (255.0 * s) for s in form.std}
    if len(scales) != 1:
        raise SnpEdgeError(f"nvinfer has one net-scale-factor for all channels; this input form needs one per "
                           f"channel (std {list(form.std)}): fold the normalisation into the graph")
    return scales.pop(), [255.0 * m / form.pixel_scale for m in form.mean]


def deepstream_labels(labels: list[str]) -> str:
    """A classifier's labels file: one line for its one output layer, labels separated by ``;``."""
    bad = [i for i, label in enumerate(labels) if ";" in label or "\n" in label]
    if bad:
        raise SnpEdgeError(f"label {bad[0]} ({labels[bad[0]]!r}) contains ';', DeepStream's label separator")
    return ";".join(labels) + "\n"


WRITABLE = {NAME: ["model.onnx_b*_gpu*_*.engine"]}  # nvinfer's engine cache beside the ONNX (engine_file)


def engine_file(onnx_name: str, batch: int, precision: str = "fp16", gpu_id: int = 0) -> str:
    """The name nvinfer gives the engine it builds from ``onnx_name`` (``model.onnx_b1_gpu0_fp16.engine``),
    so the second start loads it instead of building again."""
    return f"{onnx_name}_b{batch}_gpu{gpu_id}_{precision}.engine"


def config_text(chw: list[int], batch: int, nsf: float, offsets: list[float], output: str) -> str:
    offs = ";".join(f"{o:g}" for o in offsets)
    return f"""# Gst-nvinfer primary classifier (snp-edge bundle). Preprocessing: y = net-scale-factor * (x - offsets),
# x = 0..255 RGB; exact here, because the model's normalisation is folded into model.onnx.
[property]
gpu-id=0
onnx-file=model.onnx
model-engine-file={engine_file("model.onnx", batch)}
labelfile-path=labels.txt
net-scale-factor={nsf:.17g}
offsets={offs}
model-color-format={MODEL_COLOR_RGB}
infer-dims={";".join(str(d) for d in chw)}
batch-size={batch}
network-mode={NETWORK_MODE_FP16}
network-type={NETWORK_TYPE_CLASSIFIER}
process-mode=1
gie-unique-id=1
output-blob-names={output}
classifier-threshold={CLASSIFIER_THRESHOLD:g}
maintain-aspect-ratio=0
"""


def write(ctx: FlavorContext) -> FlavorResult:
    form = InputForm.raw(255)
    result, entry = export_for(ctx, NAME, input_form=form, head="softmax")
    nsf, offsets = nvinfer_preprocess(form)
    chw = entry["input"]["shape"][1:]
    batch = ctx.target.opt_batch
    folder = ctx.folder / NAME
    (folder / CONFIG_FILE).write_text(config_text(chw, batch, nsf, offsets, result.output))
    (folder / "labels.txt").write_text(deepstream_labels(ctx.labels), encoding="utf-8")
    entry.update({"config": f"{NAME}/{CONFIG_FILE}", "labels": f"{NAME}/labels.txt", "batch_size": batch,
                  "net_scale_factor": nsf, "offsets": offsets})
    readme = f"""## DeepStream ({ctx.target.name})

`{NAME}/` holds a Gst-nvinfer primary classifier: `model.onnx` takes 0..255 RGB with the normalisation folded
in and ends in a softmax (`{result.output}`), so `{CONFIG_FILE}` states nvinfer's preprocessing exactly:
`net-scale-factor={nsf:g}`, `offsets={";".join(f"{o:g}" for o in offsets)}`, `model-color-format=0` (RGB).
FP16 (`network-mode=2`), `batch-size={batch}` (set it to nvstreammux's batch size), `labels.txt` in
DeepStream's classifier format (one line, `;`-separated). nvinfer builds the engine on the first run and
writes it as `{engine_file("model.onnx", batch)}` beside the ONNX; later runs load it. nvinfer scales the whole
frame to the network size (`maintain-aspect-ratio=0`): no centre crop, unlike timm's evaluation transform.
The manifest declares `{NAME}/` a writable place for `model.onnx_b*_gpu*_*.engine`, so the cached engine does
not make the bundle fail its integrity check; any other file added there does.

```bash
cd {NAME}
gst-launch-1.0 filesrc location=/opt/nvidia/deepstream/deepstream/samples/streams/sample_720p.jpg ! jpegdec ! \\
  nvvideoconvert ! "video/x-raw(memory:NVMM),format=RGBA" ! m.sink_0 nvstreammux name=m batch-size=1 \\
  width=1280 height=720 ! nvinfer config-file-path={CONFIG_FILE} ! nvvideoconvert ! nvdsosd ! fakesink
```
"""
    return FlavorResult(entry, readme, [f"deepstream: {NAME}/{CONFIG_FILE}, net-scale-factor {nsf:g}, offsets "
                                        f"{offsets}, batch-size {batch}"], writable=WRITABLE)
