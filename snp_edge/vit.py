"""Creating supported timm Vision Transformers and reading weights into them (no pipeline state).

:func:`create_model` builds a timm ViT with explicit MatMul/Softmax/MatMul attention and refuses what SNP
surgery cannot handle; :func:`load_pretrained` finds pretrained weights in the Hugging Face cache (or, when
the hub is reachable, downloads them); :func:`read_state_dict` and :func:`load_state_dict_checked` read a
weights file and report mismatches by parameter name.
"""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import timm
import torch
from torch import nn

from .engines.common.schema import Document
from .errors import SnpEdgeError, first_line
from .groups import check_supported
from .memory import check_allocation

# --model-arg keys: (type, minimum, maximum); far beyond any real ViT, far below an allocation accident
MODEL_ARGS = {
    "img_size": (int, 1, 8192),
    "patch_size": (int, 1, 1024),
    "embed_dim": (int, 1, 65536),
    "depth": (int, 1, 1024),
    "num_heads": (int, 1, 1024),
    "num_classes": (int, 1, 1_000_000),
    "in_chans": (int, 1, 1024),
    "mlp_ratio": (float, 1e-3, 1024.0),
}


def check_model_args(args: object, doc: Document, field: str = "model_args") -> dict:
    """``args`` (a parsed mapping) checked against :data:`MODEL_ARGS`: known keys, types, ranges."""
    if not isinstance(args, dict):
        doc.fail(field, "an object", args)
    doc.only(args, field, MODEL_ARGS)
    for key, value in args.items():
        kind, lo, hi = MODEL_ARGS[key]
        if kind is int:
            doc.int_value(value, f"{field}.{key}", lo, hi)
        else:
            doc.number_value(value, f"{field}.{key}", lo, hi)
    return args


def parse_model_args(items: list[str] | None) -> dict:
    """``["img_size=384", "num_classes=10"]`` -> ``{"img_size": 384, "num_classes": 10}``, types and ranges
    checked (:data:`MODEL_ARGS`)."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise SnpEdgeError(f"--model-arg expects key=value, got {item!r}")
        if key not in MODEL_ARGS:
            raise SnpEdgeError(f"--model-arg {key} is not supported; use one of {', '.join(MODEL_ARGS)}")
        kind, lo, hi = MODEL_ARGS[key]
        try:
            out[key] = kind(value)
        except ValueError:
            raise SnpEdgeError(f"--model-arg {key}={value!r} is not a valid {kind.__name__}") from None
        if not (math.isfinite(out[key]) and lo <= out[key] <= hi):
            raise SnpEdgeError(f"--model-arg {key}={value} is outside [{lo:g}, {hi:g}]")
    return out


def create_model(name: str, model_args: dict | None = None, pretrained: bool = False,
                 device: str | torch.device | None = None) -> nn.Module:
    """``timm.create_model`` with unfused (explicit MatMul/Softmax/MatMul) attention, checked for support."""
    if name not in timm.list_models():
        raise SnpEdgeError(f"unknown model {name!r}: not a timm model name (try deit_small_patch16_224)")
    kwargs = dict(model_args or {})
    if str(device) != "meta":  # its size first, on the meta device (nothing allocated)
        meta = create_model(name, kwargs, device="meta")
        nbytes = sum(t.numel() * t.element_size() for t in (*meta.parameters(), *meta.buffers()))
        check_allocation(nbytes, f"{name} with {kwargs}" if kwargs else name)
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


def load_pretrained(name: str, model_args: dict) -> nn.Module:
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
        reason = first_line(exc, 160)
        raise SnpEdgeError(f"cannot load pretrained weights for {name} (offline and not cached: {reason}); "
                           f"{alternatives}") from None


def torch_load(path: Path, what: str = "weights"):
    """``torch.load`` of tensors and plain containers only (``weights_only``): a file holding other pickled
    objects is refused in one line, which never suggests unpickling it."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        kind = f" ({found.group(1)})" if found else ""
        raise SnpEdgeError(f"cannot read {what} {path}: it holds pickled Python objects{kind}, not only tensors; "
                           "snp-edge never unpickles code: save a state_dict (torch.save(model.state_dict())) "
                           "or a .safetensors file") from None
    except Exception as exc:
        raise SnpEdgeError(f"cannot read {what} {path}: {first_line(exc)}") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from a safetensors file or a torch checkpoint (plain, or under ``model``/``state_dict``)."""
    if not path.is_file():
        raise SnpEdgeError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:
            raise SnpEdgeError(f"cannot read weights {path}: {first_line(exc)}") from None
    else:
        state = torch_load(path)
    if isinstance(state, dict):
        for key in ("model", "state_dict", "model_ema"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SnpEdgeError(f"{path} holds no state_dict (expected tensors, or a dict with 'model' or 'state_dict')")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_state_dict_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` strictly; mismatches and non-finite values are reported by parameter name in one line."""
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
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise SnpEdgeError(f"weights {source}: tensor {bad} holds NaN or infinite values")
    model.load_state_dict(state, strict=True)


