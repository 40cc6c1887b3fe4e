"""Creating timm Vision Transformers, loading their weights, and checking they are supported.

A :class:`ModelHandle` carries a model together with what the rest of the pipeline needs to know about
it (where its weights came from, whether accuracy figures mean anything, its input size and cost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import timm
import torch
from torch import nn

from .errors import SnpEdgeError
from .groups import check_supported

RANDOM_WEIGHTS_NOTICE = (
    "random weights: accuracy figures are meaningless (speed, size and structure are valid)"
)
WEIGHT_CHOICES = ("pretrained", "random", "auto")
MODEL_ARG_TYPES = {
    "img_size": int,
    "patch_size": int,
    "embed_dim": int,
    "depth": int,
    "num_heads": int,
    "num_classes": int,
    "in_chans": int,
    "mlp_ratio": float,
}


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
        from .macs import count_macs

        return count_macs(self.model) / 1e9

    @property
    def data_config(self) -> dict:
        """timm preprocessing for this model: input_size, mean, std, crop_pct, interpolation.

        ``input_size`` is the model's own (img_size overrides win over the pretrained config's 224).
        """
        size = (self.in_chans, *self.model.patch_embed.img_size)
        return timm.data.resolve_data_config({"input_size": size}, model=self.model)


def parse_model_args(items: list[str] | None) -> dict:
    """``["img_size=384", "num_classes=10"]`` -> ``{"img_size": 384, "num_classes": 10}``."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise SnpEdgeError(f"--model-arg expects key=value, got {item!r}")
        if key not in MODEL_ARG_TYPES:
            raise SnpEdgeError(f"--model-arg {key} is not supported; use one of {', '.join(MODEL_ARG_TYPES)}")
        try:
            out[key] = MODEL_ARG_TYPES[key](value)
        except ValueError:
            raise SnpEdgeError(f"--model-arg {key}={value!r} is not a valid {MODEL_ARG_TYPES[key].__name__}") from None
    return out


def create_model(name: str, model_args: dict | None = None, pretrained: bool = False,
                 device: str | torch.device | None = None) -> nn.Module:
    """``timm.create_model`` with unfused (explicit MatMul/Softmax/MatMul) attention, checked for support."""
    if name not in timm.list_models():
        raise SnpEdgeError(f"unknown model {name!r}: not a timm model name (try deit_small_patch16_224)")
    kwargs = dict(model_args or {})
    try:
        if device is not None:
            with torch.device(device):
                model = timm.create_model(name, pretrained=pretrained, **kwargs)
        else:
            model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        with torch.device("meta"):
            check_supported(timm.create_model(name))  # an unsupported model is named as such first
        raise SnpEdgeError(f"cannot build {name} with {kwargs}: {exc}") from None
    check_supported(model)
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return model.eval()


def _hub_reachable(endpoint: str, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the model hub opens within ``timeout_s`` (saves minutes of retries offline)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _load_pretrained(name: str, model_args: dict) -> nn.Module:
    """Pretrained timm weights from the Hugging Face cache, else the network; clear error when neither works."""
    from huggingface_hub import constants as hf

    offline = hf.HF_HUB_OFFLINE  # HF reads HF_HUB_OFFLINE once, at import: ask the library, not the env
    try:
        hf.HF_HUB_OFFLINE = True  # cache first: no network round trip when the weights are there
        return create_model(name, model_args, pretrained=True)
    except SnpEdgeError:
        raise
    except Exception:
        pass
    finally:
        hf.HF_HUB_OFFLINE = offline
    alternatives = "use --weights PATH (a timm state_dict or checkpoint) or --weights random"
    if offline:
        raise SnpEdgeError(f"pretrained weights for {name} are not in the Hugging Face cache and "
                           f"HF_HUB_OFFLINE is set; {alternatives}")
    if not _hub_reachable(hf.ENDPOINT):
        raise SnpEdgeError(f"cannot load pretrained weights for {name}: not in the Hugging Face cache and "
                           f"{hf.ENDPOINT} is unreachable (offline); {alternatives}")
    hf.HF_HUB_ETAG_TIMEOUT = min(hf.HF_HUB_ETAG_TIMEOUT, 10)
    hf.HF_HUB_DOWNLOAD_TIMEOUT = min(hf.HF_HUB_DOWNLOAD_TIMEOUT, 20)
    try:
        return create_model(name, model_args, pretrained=True)
    except SnpEdgeError:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise SnpEdgeError(f"cannot load pretrained weights for {name} (offline and not cached: {reason}); "
                           f"{alternatives}") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from a safetensors file or a torch checkpoint (plain, or under ``model``/``state_dict``)."""
    if not path.is_file():
        raise SnpEdgeError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SnpEdgeError(f"cannot read weights {path}: {str(exc).splitlines()[0][:200]}") from None
    if isinstance(state, dict):
        for key in ("model", "state_dict", "model_ema"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SnpEdgeError(f"{path} holds no state_dict (expected tensors, or a dict with 'model' or 'state_dict')")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_state_dict_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` strictly; mismatches are reported by parameter name in one line."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    problems = []
    if wrong:
        problems.append("shape mismatch: " + "; ".join(wrong[:4]) + (f" (+{len(wrong) - 4} more)" if len(wrong) > 4 else ""))
    if missing:
        problems.append("missing: " + ", ".join(missing[:4]) + (f" (+{len(missing) - 4} more)" if len(missing) > 4 else ""))
    if unexpected:
        problems.append("unexpected: " + ", ".join(unexpected[:4]) + (f" (+{len(unexpected) - 4} more)" if len(unexpected) > 4 else ""))
    if problems:
        raise SnpEdgeError(f"weights {source} do not match the model: " + " | ".join(problems))
    model.load_state_dict(state, strict=True)


def load_model(name: str, weights: str = "random", model_args: dict | None = None) -> ModelHandle:
    """Build timm model ``name`` and load ``weights``: "pretrained", "random", "auto" or a file path.

    "auto" tries pretrained weights and falls back to random ones, loudly: the handle's notice says so.
    """
    model_args = dict(model_args or {})
    if weights == "pretrained":
        model = _load_pretrained(name, model_args)
        return ModelHandle(model, name, model_args, "pretrained", accuracy_meaningful=True)
    if weights == "auto":
        try:
            model = _load_pretrained(name, model_args)
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


def resolve_model(src: str, weights: str = "random", model_args: dict | None = None) -> ModelHandle:
    """A pruned-model folder (holding model.json) or a timm model name -> :class:`ModelHandle`."""
    path = Path(src)
    if path.is_dir() or path.suffix == ".json":
        from .saved import load_pruned_handle

        return load_pruned_handle(path)
    return load_model(src, weights, model_args)
