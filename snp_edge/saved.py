"""The pruned-model format: ``model.safetensors`` (weights) + ``model.json`` (architecture), no pickles.

``model.json`` names the timm base model and its overrides and holds the :class:`~snp_edge.arch.Arch`;
:func:`load_pruned` builds that shape from timm's definition (no original weights needed) and loads
the tensors. Folders are written atomically (:class:`~snp_edge.engines.fileio.Output`).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from .arch import Arch, build_skeleton
from .engines.fileio import Output, read_json
from .errors import SnpEdgeError, first_line
from .models import ModelHandle
from .summary import summarize
from .vit import load_state_dict_checked

FORMAT = "snp-edge.pruned-vit"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
ARCH_FILE = "model.json"


def write_pruned(handle: ModelHandle, folder: Path, extra: dict | None = None) -> None:
    """Write ``handle`` (a pruned model) into the existing, empty folder ``folder``."""
    if handle.arch is None:
        raise SnpEdgeError("only pruned models are saved in the pruned-model format")
    desc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "base_model": handle.base_model,
        "model_args": handle.model_args,
        "weights": handle.weights,
        "accuracy_meaningful": handle.accuracy_meaningful,
        "notice": handle.notice,
        "arch": handle.arch,
        "summary": summarize(handle),
        **(extra or {}),
    }
    state = {k: v.detach().contiguous() for k, v in handle.model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT, "base_model": handle.base_model})
    (folder / ARCH_FILE).write_text(json.dumps(desc, indent=2) + "\n")


def save_pruned(handle: ModelHandle, out: str | Path, extra: dict | None = None, force: bool = False) -> Path:
    """Write ``handle`` (a pruned model) to folder ``out`` as model.safetensors + model.json, atomically."""
    with Output(out, force, kind="dir") as output:
        write_pruned(handle, Path(output.stage()), extra)
        output.publish()
    return Path(out)


def read_description(path: str | Path) -> dict:
    """``model.json`` of a pruned folder (or the file itself), checked for format and version."""
    path = Path(path)
    arch_file = path / ARCH_FILE if path.is_dir() else path
    if not arch_file.is_file():
        raise SnpEdgeError(f"{path} is not a pruned model folder (no {ARCH_FILE})")
    desc = read_json(arch_file, SnpEdgeError)
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise SnpEdgeError(f"{arch_file} is not an snp-edge pruned model description")
    if desc.get("format_version") != FORMAT_VERSION:
        raise SnpEdgeError(f"{arch_file} has format_version {desc.get('format_version')}; "
                           f"this snp-edge reads version {FORMAT_VERSION}")
    for key in ("base_model", "arch"):
        if key not in desc:
            raise SnpEdgeError(f"{arch_file} lacks {key!r}")
    return desc


def load_pruned_handle(path: str | Path) -> ModelHandle:
    """Rebuild a saved pruned model as a :class:`ModelHandle` (no original weights, no pickles)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    desc = read_description(path)
    try:
        arch = Arch.from_dict(desc["arch"])
    except (TypeError, KeyError) as exc:
        raise SnpEdgeError(f"corrupt architecture in {folder / ARCH_FILE}: {exc}") from None
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise SnpEdgeError(f"{folder} has no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise SnpEdgeError(f"corrupt {weights}: {first_line(exc)}") from None
    model = build_skeleton(desc["base_model"], desc.get("model_args") or {}, arch)
    load_state_dict_checked(model, state, str(weights))
    return ModelHandle(model.eval(), desc["base_model"], desc.get("model_args") or {}, str(desc.get("weights") or folder),
                       accuracy_meaningful=bool(desc.get("accuracy_meaningful")), notice=desc.get("notice"),
                       arch=desc["arch"], name=f"{desc['base_model']} (SNP, {folder.name})")


def load_pruned(path: str | Path) -> nn.Module:
    """The pruned model saved in folder ``path``, in eval mode."""
    return load_pruned_handle(path).model
