"""A model together with what the pipeline needs to know about it, and loading one by name and weights.

A :class:`ModelHandle` carries a model with where its weights came from, whether accuracy figures mean
anything (not with random weights: then :data:`RANDOM_WEIGHTS_NOTICE` goes into every output), its input
size and cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import timm
import torch
from torch import nn

from .errors import SnpEdgeError
from .macs import count_macs
from .vit import create_model, load_pretrained, load_state_dict_checked, read_state_dict

RANDOM_WEIGHTS_NOTICE = (
    "random weights: accuracy figures are meaningless (speed, size and structure are valid)"
)


@dataclass
class ModelHandle:
    """A model plus the facts about it that reports and later stages need.

    Attributes:
        model: the network, in eval mode.
        base_model: timm model name it was built from.
        model_args: overrides passed to ``timm.create_model``.
        weights: where the weights came from ("pretrained", "random", a file path, or a pruned folder).
        accuracy_meaningful: False for random weights; every report then carries :attr:`notice`.
        arch: architecture description of a pruned model (see :mod:`snp_edge.arch`), None if unpruned.
    """

    model: nn.Module
    base_model: str
    model_args: dict = field(default_factory=dict)
    weights: str = "random"
    accuracy_meaningful: bool = False
    notice: str | None = None
    arch: dict | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.base_model

    @property
    def pruned(self) -> bool:
        return self.arch is not None

    @property
    def img_size(self) -> int:
        return int(self.model.patch_embed.img_size[0])

    @property
    def in_chans(self) -> int:
        return int(self.model.patch_embed.proj.in_channels)

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @cached_property
    def gmacs(self) -> float:
        """Multiply-accumulates per image / 1e9, counted once (handles are not modified after creation)."""
        return count_macs(self.model) / 1e9

    @property
    def data_config(self) -> dict:
        """timm preprocessing for this model: input_size, mean, std, crop_pct, interpolation.

        ``input_size`` is the model's own (img_size overrides win over the pretrained config's 224).
        """
        size = (self.in_chans, *self.model.patch_embed.img_size)
        return timm.data.resolve_data_config({"input_size": size}, model=self.model)


def load_model(name: str, weights: str = "random", model_args: dict | None = None) -> ModelHandle:
    """Build timm model ``name`` and load ``weights``: "pretrained", "random", "auto" or a file path.

    "auto" tries pretrained weights and falls back to random ones, loudly: the handle's notice says so.
    """
    model_args = dict(model_args or {})
    if weights == "pretrained":
        model = load_pretrained(name, model_args)
        return ModelHandle(model, name, model_args, "pretrained", accuracy_meaningful=True)
    if weights == "auto":
        try:
            model = load_pretrained(name, model_args)
            return ModelHandle(model, name, model_args, "pretrained", accuracy_meaningful=True)
        except SnpEdgeError as exc:
            if str(exc).startswith("unknown model") or "cannot build" in str(exc):
                raise
            notice = f"{RANDOM_WEIGHTS_NOTICE}; pretrained weights could not be loaded ({exc})"
            torch.manual_seed(0)
            model = create_model(name, model_args)
            return ModelHandle(model, name, model_args, "random", accuracy_meaningful=False, notice=notice)
    if weights == "random":
        torch.manual_seed(0)
        model = create_model(name, model_args)
        return ModelHandle(model, name, model_args, "random", accuracy_meaningful=False, notice=RANDOM_WEIGHTS_NOTICE)
    path = Path(weights)
    model = create_model(name, model_args, device="meta")
    model = model.to_empty(device="cpu")
    load_state_dict_checked(model, read_state_dict(path), str(path))
    return ModelHandle(model.eval(), name, model_args, str(path), accuracy_meaningful=True)
