"""The bundle's README.md: what is in it, what the ONNX takes, and the commands that check and run it."""

from __future__ import annotations

from snp_edge.engines.common.targets import resolve_target

from .fast_preprocess import readme_lines as fast_readme_lines

README_FILE = "README.md"


def bundle_readme(manifest: dict, polygraphy: dict[str, str], sections: list[str], notice: str | None) -> str:
    """README text from the (almost complete) ``manifest``, the ``polygraphy`` command lines and the flavours'
    ``sections`` (Markdown, one per flavour)."""
    onnx, pre, model = manifest["onnx"], manifest["preprocess"], manifest["model"]
    inp, out = onnx["input"], onnx["output"]
    norm = inp.get("normalization")
    target = resolve_target(manifest["target"])
    dla = ["scripts/build.sh --dla-core 0 && scripts/verify.sh --dla-core 0   # on DLA core 0, GPU fallback "
           "(Orin NX / AGX Orin)"] if target.dla_cores else []
    if norm and norm["in_graph"]:
        scale = "[0, 1]" if norm["pixel_scale"] == 1 else f"0..{norm['pixel_scale']:g}"
        holds = (f"RGB pixels in {scale}, NCHW float32: the normalisation (mean {pre['mean']}, std {pre['std']}) is "
                 "folded into the patch embedding")
    else:
        holds = f"normalised RGB, NCHW float32: (rgb - {pre['mean']}) / {pre['std']} with rgb in [0, 1]"
    lines = [
        f"# {model['base_model']} ({'pruned' if model['pruned'] else 'unpruned'}) for {manifest['target']}",
        "",
        *([f"**NOTICE: {notice}**", ""] if notice else []),
        f"{model['gmacs']} GMACs, {model['params']:,} parameters, ONNX opset {onnx['opset']}, widths in multiples "
        f"of {model.get('width_alignment', 1)}. Target: {target.description}.",
        "",
        "## Input and output",
        "",
        f"`{onnx['file']}`: input `{inp['name']}` {inp['shape']} (-1: any batch) holds {holds}; output "
        f"`{out['name']}` {out['shape']} (logits). Images are resized to {pre['resize']} px "
        f"({pre['interpolation']}) and centre-cropped to {pre['crop']} first, as timm evaluates them. Labels: "
        f"`{manifest.get('labels', 'labels.txt')}`, line i = class i. Golden data (inputs in the form above and "
        f"ONNX Runtime FP32 outputs): `{manifest['golden']['inputs']}`, `{manifest['golden']['outputs']}`.",
        "",
        "## On the device",
        "",
        "Python 3.6+ with numpy and Pillow, and TensorRT (JetPack) or ONNX Runtime; OpenCV (JetPack's python3-opencv, "
        "or opencv-python-headless) for videos, cameras and streams. Run from this folder:",
        "",
        "```bash",
        "scripts/deploy.sh --no-prompt --max-perf  # unattended: preflight, build, verify; status in deploy-status.json",
        "scripts/deploy.sh --backend onnxruntime   # no TensorRT here: ONNX Runtime, verified the same way",
        "scripts/build.sh && scripts/verify.sh     # TensorRT FP16 engine against the golden outputs",
        *dla,
        "scripts/bench.sh --json-file bench.json   # batch sweep: latency percentiles, telemetry, energy per image",
        "python3 -m engines classify . photo.jpg   # top-5 (TensorRT where it loads, else ONNX Runtime)",
        "python3 -m engines classify . csi://0 --preprocess fast --smoothing 0.8 --json-lines  # a camera, live",
        "python3 -m engines classify . clip.mp4 --every 5 --json   # a video file; also /dev/video0, rtsp://...",
        "```",
        "",
        "The app, in three lines:",
        "",
        "```python",
        "from engines import Classifier        # from this folder (or sys.path.insert(0, BUNDLE_DIR))",
        "clf = Classifier(\".\")                 # backend=\"auto\": TensorRT where it loads, else ONNX Runtime",
        "print(clf.classify(\"photo.jpg\")[0])   # [(class_id, probability, label), ...] top 5; also arrays, PIL",
        "```",
        "",
        "and for a stream: `for frame, result in clf.stream(\"csi://0\", smoothing=0.8, threshold=0.3): ...`.",
        "",
        "Exit status of every command and script (the same in `deploy-status.json`):",
        "",
        "| Status | Meaning | What to do |",
        "|---:|---|---|",
        "| 0 | success | |",
        "| 1 | a verification gate failed: the result is wrong | rebuild (e.g. `--fp32-norms`), report it |",
        "| 2 | bad input: a flag, a file, the bundle (modified or corrupt) | fix the command; copy the bundle again |",
        "| 3 | a prerequisite is missing (TensorRT, GPU, OpenCV, disk, memory) | install it; the message names it |",
        "| 4 | the power mode or clocks could not be set or restored | `sudo -n` must work for nvpmodel |",
        "| 130 / 143 | interrupted (Ctrl-C) / terminated (SIGTERM) | staged files are removed; run again |",
        "",
        *(fast_readme_lines(pre["fast"]) if pre.get("fast") else []),
        "## Polygraphy",
        "",
        "The golden data is also in Polygraphy's formats. On any machine with Polygraphy and ONNX Runtime (tested "
        "by snp-edge):",
        "",
        "```bash",
        polygraphy["onnxrt"],
        "```",
        "",
        "On a TensorRT machine (the RTX box's TensorRT container; Polygraphy >= 0.48 needs Python >= 3.8, so not "
        "JetPack 4.6's Python 3.6): the FP16 engine against the same golden outputs, with the tolerance of "
        "`scripts/verify.sh` (0.02 x the largest golden logit):",
        "",
        "```bash",
        polygraphy["trt_fp16"],
        "```",
        "",
    ]
    return "\n".join(lines + [s.rstrip() + "\n" for s in sections])
