"""What a model argument names, and loading it: the one resolver for every command.

A model argument (``snp-edge export SRC``, ``bench MODEL...``, ``finetune MODEL``, ``--teacher``...) is:

==============  ===============================================================================
``pruned``      a pruned-model folder (holding ``model.json``), or that ``model.json`` itself
``timm``        anything that is not a path: a timm model name such as ``deit_small_patch16_224``
``weights``     a ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` file of a timm model's weights
``onnx``        an ``.onnx`` file
``engine``      a serialized TensorRT engine (``.engine``, ``.plan``, ``.trt``)
``measurement`` a file of latencies measured elsewhere (``.json``, ``.txt``, ``.log``)
==============  ===============================================================================

A name with a path separator or one of these suffixes is a path and must exist.
"""

from __future__ import annotations

from pathlib import Path

from .errors import SnpEdgeError
from .models import load_model
from .saved import ARCH_FILE, WEIGHTS_FILE, load_pruned_handle, read_description

SUFFIXES = {
    "weights": (".safetensors", ".pth", ".pt", ".bin"),
    "onnx": (".onnx",),
    "engine": (".engine", ".plan", ".trt"),
    "measurement": (".json", ".txt", ".log"),
}


def source_kind(spec: str) -> str:
    """The kind of model argument ``spec`` is (see the module docstring); missing paths are errors."""
    path = Path(spec)
    suffix = path.suffix.lower()
    if path.is_dir():
        if not (path / ARCH_FILE).is_file():
            raise SnpEdgeError(f"{spec} is a folder but not a pruned model folder (no {ARCH_FILE})")
        return "pruned"
    if path.is_file():
        if suffix == ".json" and (path.name == ARCH_FILE or (path.parent / WEIGHTS_FILE).is_file()):
            return "pruned"
        for kind, suffixes in SUFFIXES.items():
            if suffix in suffixes:
                return kind
        raise SnpEdgeError(f"{spec}: unrecognised file type {suffix or '(no suffix)'}; expected a pruned model "
                           "folder, a timm model name, or a " + ", ".join(s for v in SUFFIXES.values() for s in v)
                           + " file")
    known = any(suffix in v for v in SUFFIXES.values())
    if known or "/" in spec or "\\" in spec or spec.startswith("."):
        raise SnpEdgeError(f"{spec} not found")
    return "timm"


def load_handle(spec: str, weights: str = "auto", model_args: dict | None = None,
                kinds: tuple[str, ...] = ("pruned", "timm")):
    """A :class:`~snp_edge.models.ModelHandle` for a pruned folder or a timm model name (``weights`` and
    ``model_args`` apply to timm names); other kinds than ``kinds`` are refused with the kind named."""
    kind = source_kind(spec)
    if kind not in kinds:
        raise SnpEdgeError(f"{spec} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} file; expected "
                           + " or ".join(_KIND_WORDS[k] for k in kinds))
    if kind == "pruned":
        return load_pruned_handle(spec)
    return load_model(spec, weights, model_args)


_KIND_WORDS = {"pruned": "a pruned model folder", "timm": "a timm model name", "weights": "a weights file",
               "onnx": "an ONNX file", "engine": "a TensorRT engine", "measurement": "a measurement file"}


def load_reference(spec: str, like, weights: str = "auto", pruned_from: str | Path | None = None, what: str = "model"):
    """An unpruned reference (a teacher, the model attention fidelity compares with) for the model ``like``:

    ``original`` (the unpruned model the pruned folder ``pruned_from`` was made from) | a pruned folder | a
    weights file of ``like``'s base model | a timm model name (with ``weights`` and ``like``'s overrides).
    """
    if spec == "original":
        if pruned_from is None:
            raise SnpEdgeError(f"--{what} original needs a pruned model folder; name the {what} instead")
        return load_original(pruned_from)
    kind = source_kind(spec)
    if kind == "weights":
        return load_model(like.base_model, spec, like.model_args)
    if kind == "timm":
        return load_model(spec, weights, like.model_args)
    return load_handle(spec, kinds=("pruned",))


def load_original(folder: str | Path):
    """The unpruned model a pruned folder was made from: its model.json names base model, overrides and weights
    (pretrained, random, or a file looked up as given, in the folder, and beside it)."""
    folder = Path(folder)
    folder = folder.parent if folder.suffix == ".json" else folder
    desc = read_description(folder)
    weights = str(desc.get("weights") or "random")
    if weights not in ("pretrained", "random", "auto"):
        found = next((c for c in (Path(weights), folder / weights, folder.parent / weights) if c.is_file()), None)
        if found is None:
            raise SnpEdgeError(f"the original weights {weights} named in {folder}/{ARCH_FILE} are not found; "
                               "name the unpruned model explicitly (a timm name or weights file)")
        weights = str(found)
    return load_model(desc["base_model"], weights, desc.get("model_args") or {})
