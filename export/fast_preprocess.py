"""The fast preprocessing path's agreement with the exact one, measured when a bundle is made and shipped in it
(manifest ``preprocess.fast``, README): the bundle's ONNX in ONNX Runtime on both paths' tensors, per image the
top-1 class and the top-5 probabilities of the exact path.

Image sets: ``photos``, the reference photographs as they are; ``camera_frames``, each photograph resized
(bicubic) to the frame sizes of a camera, 640x480 and 1920x1080, the downscales the device's fast path takes
on live frames. Resamplers: ``pil`` (always: Pillow is the device's own requirement) and ``opencv`` (where cv2
imports here; the device takes it where it imports).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from snp_edge.engines.classify import softmax
from snp_edge.engines.common.ort import ort_session, run_logits
from snp_edge.engines.preprocess import FAST_METHOD, opencv, preprocess

CAMERA_SIZES = ((640, 480), (1920, 1080))


def camera_frames(photos: list[np.ndarray]) -> list[np.ndarray]:
    """Every photograph (HxWx3 uint8 RGB) resized to each of :data:`CAMERA_SIZES` (PIL bicubic)."""
    from PIL import Image

    return [np.asarray(Image.fromarray(p).resize(size, Image.BICUBIC)) for p in photos for size in CAMERA_SIZES]


def agreement(exact_probs: np.ndarray, fast_probs: np.ndarray, k: int = 5) -> dict[str, Any]:
    """``{n, top1_agreement, max_top5_prob_diff}`` of two (N, classes) probability arrays: the share of rows
    with the same top-1 class, and the largest difference of a probability among each row's exact top-k."""
    top = np.argsort(-exact_probs, axis=1, kind="stable")[:, :k]
    diff = np.abs(np.take_along_axis(exact_probs, top, 1) - np.take_along_axis(fast_probs, top, 1))
    same = exact_probs.argmax(1) == fast_probs.argmax(1)
    return {"n": int(len(exact_probs)), "top1_agreement": round(float(same.mean()), 6),
            "max_top5_prob_diff": round(float(diff.max()), 6)}


def measure_fast_agreement(onnx_path: str, spec: dict, input_name: str, output_name: str,
                           photos: list[np.ndarray], extra_sets: dict[str, list[np.ndarray]] | None = None
                           ) -> dict[str, Any]:
    """The manifest's ``preprocess.fast`` block: ``{method, agreement: {"RESAMPLER/SET": {n, top1_agreement,
    max_top5_prob_diff}}}`` for the sets ``photos``, ``camera_frames`` and ``extra_sets`` (RGB frames)."""
    session = ort_session(onnx_path)
    sets = {"photos": photos, "camera_frames": camera_frames(photos), **(extra_sets or {})}
    resamplers = ["pil"] + (["opencv"] if opencv() is not None else [])
    out: dict[str, Any] = {}

    def probs(batch: np.ndarray) -> np.ndarray:
        return softmax(run_logits(session, batch, input_name, output_name))

    for name, frames in sets.items():
        exact = probs(preprocess(frames, spec))
        for resampler in resamplers:
            fast = probs(preprocess(frames, spec, mode="fast", resampler=resampler))
            out[f"{resampler}/{name}"] = agreement(exact, fast)
    return {"method": FAST_METHOD, "agreement": out}


def readme_lines(fast: dict[str, Any]) -> list[str]:
    """The README's section on the fast path: what it does and its measured agreement."""
    lines = ["## Fast preprocessing", "",
             "`--preprocess fast` (`Classifier(..., preprocess=\"fast\")`) trades the exact preprocessing (timm's eval "
             f"transform, bit for bit; what `verify` checks) for speed: {fast['method']}. Its agreement with the exact "
             "path, measured on this model in ONNX Runtime when the bundle was made (camera frames: the photographs "
             "at 640x480 and 1920x1080):", "",
             "| Resampler / images | Images | Same top-1 | Max top-5 probability difference |",
             "|---|---:|---:|---:|"]
    for key, a in fast["agreement"].items():
        lines.append(f"| {key} | {a['n']} | {100 * a['top1_agreement']:.1f}% | {a['max_top5_prob_diff']:.4f} |")
    return lines + [""]
