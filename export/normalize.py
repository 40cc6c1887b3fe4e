"""Normalisation folded into the patch-embedding convolution: the ONNX takes pixels, not normalised tensors.

A timm ViT expects ``v_c = (r_c - M_c) / S_c`` for RGB ``r`` in [0, 1] and the model's mean ``M`` and std
``S``. What a runtime actually hands the graph is described by an :class:`InputForm`:
``u_c = (r_c * pixel_scale - mean_c) / std_c``. Raw pixels are mean 0, std 1 with ``pixel_scale`` 1 (RGB in
[0, 1]) or 255 (0..255); jetson-inference applies ImageNet's fixed mean/std to [0, 1] pixels itself.

Per channel ``v`` is affine in ``u``: ``v_c = a_c u_c + b_c`` with ``a_c = std_c / (pixel_scale S_c)`` and
``b_c = (mean_c / pixel_scale - M_c) / S_c``. The patch embedding is a convolution with a bias and no
padding, so the map folds exactly into it (no node is added)::

    W'[o, c, i, j] = a_c W[o, c, i, j]          b'[o] = b[o] + sum_{c,i,j} W[o, c, i, j] b_c

For raw pixels this is ``W' = W / (S pixel_scale)`` and ``b' = b - sum(W' M pixel_scale)``. The fold is
computed in float64 and rounded once to float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from snp_edge.errors import SnpEdgeError

INPUT_SCALES = (1, 255)  # --input-scale: RGB in [0, 1] or 0..255


@dataclass(frozen=True)
class InputForm:
    """What the ONNX input holds: ``u_c = (r_c * pixel_scale - mean_c) / std_c``, ``r`` = RGB in [0, 1].

    ``in_graph``: the model's own normalisation is folded into the graph (False: the runtime applies it,
    and ``mean``/``std`` are the model's, ``pixel_scale`` 1).
    """

    pixel_scale: float = 1.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    in_graph: bool = True

    @classmethod
    def external(cls, mean, std) -> InputForm:
        """The unfolded form: the input is already ``(r - mean) / std`` with the model's mean/std."""
        return cls(1.0, tuple(float(m) for m in mean), tuple(float(s) for s in std), in_graph=False)

    @classmethod
    def raw(cls, pixel_scale: float = 1.0) -> InputForm:
        """Pixels as they are: RGB in [0, 1] (``pixel_scale`` 1) or 0..255 (255)."""
        if pixel_scale not in INPUT_SCALES:
            raise SnpEdgeError(f"--input-scale must be one of {INPUT_SCALES}, got {pixel_scale:g}")
        return cls(float(pixel_scale))

    def describe(self) -> str:
        """One line for people: what to feed the ONNX."""
        if not self.in_graph:
            return (f"normalised RGB, NCHW float32: (rgb - mean) / std with rgb in [0, 1], mean {list(self.mean)}, "
                    f"std {list(self.std)} (the runtime normalises)")
        pixels = "RGB in [0, 1]" if self.pixel_scale == 1 else f"RGB in [0, {self.pixel_scale:g}]"
        if self.mean == (0.0,) * len(self.mean) and self.std == (1.0,) * len(self.std):
            return f"{pixels}, NCHW float32 (normalisation folded into the graph)"
        return (f"({pixels} - {list(self.mean)}) / {list(self.std)}, NCHW float32 (what the runtime computes; "
                f"the model's own normalisation is folded into the graph)")

    def to_dict(self) -> dict:
        """The manifest's ``onnx.input.normalization``."""
        return {"in_graph": self.in_graph, "pixel_scale": self.pixel_scale, "mean": list(self.mean),
                "std": list(self.std)}

    def affine(self, model_mean, model_std) -> tuple[np.ndarray, np.ndarray]:
        """Per channel (a, b), float64, with ``v = a u + b`` (``v`` what the model expects, ``u`` this form)."""
        scale = float(self.pixel_scale)
        mean, std = np.asarray(self.mean, np.float64), np.asarray(self.std, np.float64)
        m, s = np.asarray(model_mean, np.float64), np.asarray(model_std, np.float64)
        return std / (scale * s), (mean / scale - m) / s

    def encode(self, normalised: torch.Tensor, model_mean, model_std) -> np.ndarray:
        """Images the model takes (``v``, N x C x H x W) -> what this form's ONNX takes (``u``), float32."""
        a, b = self.affine(model_mean, model_std)
        v = normalised.detach().cpu().numpy().astype(np.float64)
        return ((v - b[:, None, None]) / a[:, None, None]).astype(np.float32)


@torch.no_grad()
def fold_into_patch_embed(model: nn.Module, form: InputForm, model_mean, model_std) -> None:
    """Fold ``form`` -> the model's normalisation into ``model.patch_embed.proj`` in place (an export copy)."""
    proj = getattr(getattr(model, "patch_embed", None), "proj", None)
    if not isinstance(proj, nn.Conv2d):
        raise SnpEdgeError("cannot fold the normalisation: the model has no patch_embed.proj convolution")
    if any(p != 0 for p in proj.padding) or getattr(model.patch_embed, "dynamic_img_pad", False):
        raise SnpEdgeError("cannot fold the normalisation exactly: the patch embedding pads its input")
    if len(form.mean) != proj.in_channels:
        raise SnpEdgeError(f"the input form has {len(form.mean)} channels, the model takes {proj.in_channels}")
    a, b = (torch.from_numpy(t) for t in form.affine(model_mean, model_std))
    weight = proj.weight.double()
    bias = proj.bias.double() if proj.bias is not None else torch.zeros(proj.out_channels, dtype=torch.float64)
    new_bias = bias + (weight * b[None, :, None, None]).sum(dim=(1, 2, 3))
    proj.weight.copy_((weight * a[None, :, None, None]).float())
    if proj.bias is None:
        proj.bias = nn.Parameter(torch.zeros(proj.out_channels))
    proj.bias.copy_(new_bias.float())
