"""The ``jetson-inference`` flavour: an ONNX for jetson-inference's ``imagenet.py`` / ``imageNet`` (``jetson-inference/``).

What jetson-inference does to a frame before an ONNX classifier (``c/imageNet.cpp``, ``c/tensorConvert.cu``):
it stretches the whole frame to the network's size with nearest-neighbour sampling (source pixel
``int(x * in_w / out_w)``, no aspect ratio kept, no centre crop), scales to [0, 1] and applies ImageNet's mean
(0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), fixed, whatever the model was trained with. It runs batch
1, takes the output as confidences without a softmax, and reads labels one per line (a line starting with a
9-character synset ``nXXXXXXXX `` has it stripped).

So the flavour's ONNX: static batch 1; the model's own normalisation folded in *relative to* jetson-inference's
(exact for any timm mean/std: the ONNX takes jetson-inference's tensor); a softmax head (``probs``); labels
prefixed ``n%08d `` so no label is ever mistaken for a synset. What stays different is the resize:
:func:`preprocessing_agreement` measures it on photographs against timm's own transform.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .flavors import FlavorContext, FlavorResult, export_for
from .normalize import InputForm

NAME = "jetson-inference"
JI_MEAN = (0.485, 0.456, 0.406)  # imageNet::preProcess for ONNX models (float32 constants in the CUDA code)
JI_STD = (0.229, 0.224, 0.225)
JETSON_FORM = InputForm(1.0, JI_MEAN, JI_STD, in_graph=True)


def jetson_labels(labels: list[str]) -> str:
    """labels.txt for imageNet: ``n00000000 label`` per line (jetson-inference strips the 9-character prefix)."""
    return "".join(f"n{i:08d} {label}\n" for i, label in enumerate(labels))


def jetson_preprocess(rgb: np.ndarray, size: int) -> np.ndarray:
    """jetson-inference's imageNet preprocessing of one HxWx3 uint8 RGB frame -> (3, size, size) float32:
    nearest-neighbour stretch (``gpuTensorNormMean``: ``dx = int(x * float(in_w) / float(out_w))`` in float32),
    ``px / 255``, then ImageNet mean/std."""
    height, width = rgb.shape[:2]
    sx, sy = np.float32(width) / np.float32(size), np.float32(height) / np.float32(size)
    xs = (np.arange(size, dtype=np.float32) * sx).astype(np.int64)
    ys = (np.arange(size, dtype=np.float32) * sy).astype(np.int64)
    px = rgb[ys[:, None], xs[None, :]].astype(np.float32) * np.float32(1.0 / 255.0)
    out = (px - np.asarray(JI_MEAN, np.float32)) / np.asarray(JI_STD, np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


@torch.no_grad()
def preprocessing_agreement(handle, onnx_path: str | Path, photos: list[tuple[str, np.ndarray]]) -> dict:
    """jetson-inference's preprocessing + the flavour's ONNX against timm's evaluation transform + the model,
    on ``photos`` (name, HxWx3 uint8 RGB): top-1 agreement and the max absolute probability difference, and
    (independent of the weights) the mean absolute difference of the two input tensors in the model's
    normalised units."""
    from PIL import Image
    from snp_edge.engines.common.ort import ort_session, run_logits
    from timm.data import create_transform

    transform = create_transform(**handle.data_config, is_training=False)
    timm_in = torch.stack([transform(Image.fromarray(rgb)) for _, rgb in photos])
    p_timm = torch.softmax(handle.model.eval()(timm_in), dim=-1).numpy()
    session = ort_session(str(onnx_path))
    ji_in = np.stack([jetson_preprocess(rgb, handle.img_size) for _, rgb in photos])
    p_ji = np.concatenate([run_logits(session, x[None], output_name="probs") for x in ji_in])
    a, b = JETSON_FORM.affine(handle.data_config["mean"], handle.data_config["std"])
    ji_as_model = ji_in * a[:, None, None] + b[:, None, None]  # what the folded graph turns jetson's tensor into
    top_timm, top_ji = p_timm.argmax(1), p_ji.argmax(1)
    return {
        "images": [name for name, _ in photos],
        "top1_agreement": float((top_timm == top_ji).mean()),
        "max_prob_diff": float(np.abs(p_timm - p_ji).max()),
        "top1_prob_diff": [float(abs(p_timm[i, t] - p_ji[i, t])) for i, t in enumerate(top_timm)],
        "top1_timm": top_timm.tolist(), "top1_jetson_inference": top_ji.tolist(),
        "input_mean_abs_diff": float(np.abs(timm_in.numpy() - ji_as_model).mean()),
        "accuracy_meaningful": handle.accuracy_meaningful,
    }


def agreement_text(report: dict | None, handle) -> str:
    if report is None:
        return ("Not measured: the bundle holds no reference photographs (give `--calib FOLDER` of images to "
                "measure it).")
    n = len(report["images"])
    text = (f"Measured on the bundle's {n} reference photographs ({', '.join(report['images'])}): top-1 agreement "
            f"between jetson-inference's preprocessing and timm's transform **{report['top1_agreement']:.0%}** "
            f"({round(report['top1_agreement'] * n)}/{n}), max probability difference "
            f"**{report['max_prob_diff']:.3g}** (over all classes and images); the input tensors themselves differ "
            f"by {report['input_mean_abs_diff']:.3g} on average (in normalised units, whatever the weights).")
    if not report["accuracy_meaningful"]:
        text += f" NOTICE: {handle.notice}: these figures show the effect of the resize on this network, not on accuracy."
    return text


# what imagenet.py writes when run from the bundle root as documented: its engine cache and checksum beside the
# ONNX (model.onnx.1.1.8201.GPU.FP16.engine, ...sha256sum) and the output image in the current folder
WRITABLE = {NAME: ["model.onnx.*.engine", "model.onnx*.sha256sum"], ".": ["*.jpg", "*.jpeg", "*.png"]}


def write(ctx: FlavorContext) -> FlavorResult:
    result, entry = export_for(ctx, NAME, input_form=JETSON_FORM, batch=1, head="softmax")
    folder = ctx.folder / NAME
    (folder / "labels.txt").write_text(jetson_labels(ctx.labels), encoding="utf-8")
    report = preprocessing_agreement(ctx.handle, folder / "model.onnx", ctx.photos) if ctx.photos else None
    command = (f"imagenet.py --model={NAME}/model.onnx --labels={NAME}/labels.txt --input-blob=input "
               f"--output-blob={result.output} input.jpg output.jpg")
    entry.update({"labels": f"{NAME}/labels.txt", "command": command, "preprocessing_agreement": report})
    size, cfg = ctx.handle.img_size, ctx.handle.data_config
    resize_text = (f"**What its resize does.** timm evaluates with crop fraction {cfg['crop_pct']:.3g}: resize the "
                   f"short side to {int(size / cfg['crop_pct'])} px ({cfg['interpolation']}), centre-crop {size}; "
                   "jetson-inference stretches the whole frame with nearest-neighbour sampling. "
                   + agreement_text(report, ctx.handle))
    readme = f"""## jetson-inference ({ctx.target.name})

`{NAME}/model.onnx`: static batch 1, input `input` [1, {ctx.handle.in_chans}, {size}, {size}] as jetson-inference
fills it (frame stretched to {size}x{size}, nearest neighbour; [0, 1]; ImageNet mean/std), with the model's own
normalisation folded in relative to that, and a softmax output `{result.output}`; `labels.txt` one label per
line (`n%08d` prefixes, which jetson-inference strips). On the Jetson, from the bundle folder:

```bash
{command}
```

jetson-inference builds an FP16 TensorRT engine on the first run and caches it beside the ONNX
(`{NAME}/model.onnx.1.1.<TensorRT>.GPU.FP16.engine` and a `.sha256sum`); the manifest declares those names
and the output image (`*.jpg`, `*.jpeg`, `*.png` in the bundle root) writable, so running it as above leaves
the bundle intact for `verify`, `deploy` and `Classifier`; any other file added there is refused.

{resize_text}
"""
    notes = [f"jetson-inference: {NAME}/model.onnx (batch 1, softmax); " + (
        f"preprocessing top-1 agreement {report['top1_agreement']:.0%}, max prob diff {report['max_prob_diff']:.3g}"
        if report else "preprocessing agreement not measured (no photographs)")]
    return FlavorResult(entry, readme, notes, writable=WRITABLE)
