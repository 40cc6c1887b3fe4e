"""The pruned-model format: ``model.safetensors`` (weights) + ``model.json`` (architecture), no pickles.

``model.json`` names the timm base model and its overrides, holds the :class:`~snp_edge.arch.Arch` and the
sha256 of the weights file; :func:`load_pruned` checks it (:func:`validate_description`: types, ranges,
finite numbers; then the widths against the base model), builds that shape from timm's definition (no
original weights needed) and loads the tensors, refusing a weights file whose sha256 differs and tensors
holding NaN or infinities. Folders are written atomically (:class:`~snp_edge.engines.common.fileio.Output`); the same model
gives the same bytes.

model.json (version 2)::

    format "snp-edge.pruned-vit", format_version 2, base_model (timm name), model_args ({img_size, ...},
    see snp_edge.vit.MODEL_ARGS), weights (where the original weights came from), weights_sha256 (of
    model.safetensors), accuracy_meaningful, notice (str or null),
    arch {embed, blocks: [{index, heads, qk, v, mlp}], head_dim, depth, num_heads, mlp, embed_orig,
          heads_kept: [[original head indices] per kept block]},
    summary (what `snp-edge info` prints), pruning (the recipe), finetune (optional)
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from .arch import Arch, build_skeleton
from .engines.common.fileio import Output, read_json
from .engines.common.schema import Document, check_finite_tree
from .engines.manifest import sha256_file
from .errors import SnpEdgeError, first_line
from .models import ModelHandle
from .summary import summarize
from .vit import check_model_args, load_state_dict_checked

FORMAT = "snp-edge.pruned-vit"
FORMAT_VERSION = 2  # 2: model.json records weights_sha256; version 1 folders are still read (unchecked)
READ_VERSIONS = (1, 2)
WEIGHTS_FILE = "model.safetensors"
ARCH_FILE = "model.json"
_BLOCK_KEYS = ("index", "heads", "qk", "v", "mlp")
_MAX_WIDTH = 1 << 20  # no ViT layer is wider; anything above is a corrupt file, refused before allocation


def write_pruned(handle: ModelHandle, folder: Path, extra: dict | None = None) -> None:
    """Write ``handle`` (a pruned model) into the existing, empty folder ``folder``. Identical models give
    byte-identical files (one safetensors metadata key, JSON keys in a fixed order)."""
    if handle.arch is None:
        raise SnpEdgeError("only pruned models are saved in the pruned-model format")
    state = {k: v.detach().contiguous() for k, v in handle.model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
    desc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "base_model": handle.base_model,
        "model_args": handle.model_args,
        "weights": handle.weights,
        "weights_sha256": sha256_file(str(folder / WEIGHTS_FILE)),
        "accuracy_meaningful": handle.accuracy_meaningful,
        "notice": handle.notice,
        "arch": handle.arch,
        "summary": summarize(handle),
        **(extra or {}),
    }
    (folder / ARCH_FILE).write_text(json.dumps(desc, indent=2, allow_nan=False) + "\n")


def save_pruned(handle: ModelHandle, out: str | Path, extra: dict | None = None, force: bool = False) -> Path:
    """Write ``handle`` (a pruned model) to folder ``out`` as model.safetensors + model.json, atomically."""
    with Output(out, force, kind="dir") as output:
        write_pruned(handle, Path(output.stage()), extra)
        output.publish()
    return Path(out)


def _check_widths(doc: Document, widths: object, field: str) -> None:
    if not isinstance(widths, dict):
        doc.fail(field, "an object", widths)
    doc.int(widths, "embed", f"{field}.embed", 1, _MAX_WIDTH)
    blocks = doc.list(widths, "blocks", f"{field}.blocks", min_items=1, max_items=4096)
    for j, block in enumerate(blocks):
        if not isinstance(block, dict):
            doc.fail(f"{field}.blocks[{j}]", "an object", block)
        for key in _BLOCK_KEYS:
            doc.int(block, key, f"{field}.blocks[{j}].{key}", 0, _MAX_WIDTH)  # 0: a removed sublayer


def _check_summary(doc: Document, summary: object) -> None:
    """The summary ``info`` prints (see :func:`snp_edge.summary.summarize`)."""
    if not isinstance(summary, dict):
        doc.fail("summary", "an object", summary)
    doc.str(summary, "model", "summary.model")
    doc.bool(summary, "pruned", "summary.pruned")
    doc.str(summary, "weights", "summary.weights")
    after = "gmacs_after" in summary
    for key in ("gmacs_after", "params_after", "gmacs_before", "params_before") if after else ("gmacs", "params"):
        doc.number(summary, key, f"summary.{key}", minimum=0)
    for key in ("gmacs_ratio", "params_ratio"):
        doc.number(summary, key, f"summary.{key}", minimum=0, default=None)
    doc.str(summary, "notice", "summary.notice", default=None)
    _check_widths(doc, doc.get(summary, "widths", "summary.widths"), "summary.widths")


def validate_description(desc: object, label: str) -> dict:
    """Check a parsed model.json against the format (types, ranges, finite numbers), naming the first bad
    field; widths are checked against the base model when it is built (:func:`snp_edge.arch.check_arch`)."""
    doc = Document(label, SnpEdgeError)
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise SnpEdgeError(f"{label} is not an snp-edge pruned model description")
    version = doc.get(desc, "format_version", "format_version")
    if version not in READ_VERSIONS:
        raise SnpEdgeError(f"{label} has format_version {version!r}; this snp-edge reads versions "
                           f"{', '.join(map(str, READ_VERSIONS))}")
    check_finite_tree(desc, label, SnpEdgeError)
    doc.str(desc, "base_model", "base_model", max_len=200)
    check_model_args(doc.get(desc, "model_args", "model_args", {}) or {}, doc)
    doc.str(desc, "weights", "weights", default=None)
    if version >= 2 or "weights_sha256" in desc:
        digest = doc.str(desc, "weights_sha256", "weights_sha256")
        if len(digest) != 64 or digest.strip("0123456789abcdef"):
            doc.fail("weights_sha256", "a lowercase sha256 hex digest", digest)
    doc.bool(desc, "accuracy_meaningful", "accuracy_meaningful", default=False)
    if doc.get(desc, "notice", "notice", None) is not None:
        doc.str(desc, "notice", "notice")
    arch = doc.dict(desc, "arch", "arch")
    for key in ("embed", "head_dim", "depth", "num_heads", "mlp", "embed_orig"):
        doc.int(arch, key, f"arch.{key}", 1, _MAX_WIDTH)
    _check_widths(doc, {"embed": arch["embed"], "blocks": doc.get(arch, "blocks", "arch.blocks")}, "arch")
    heads_kept = doc.list(arch, "heads_kept", "arch.heads_kept", default=[])
    for j, heads in enumerate(heads_kept):
        if not isinstance(heads, list):
            doc.fail(f"arch.heads_kept[{j}]", "a list of head indices", heads)
        for i, h in enumerate(heads):
            doc.int_value(h, f"arch.heads_kept[{j}][{i}]", 0, _MAX_WIDTH)
    doc.only(arch, "arch", (*_ARCH_KEYS, "heads_kept"))
    if "summary" in desc:
        _check_summary(doc, desc["summary"])
    for key in ("pruning", "finetune"):
        doc.dict(desc, key, key, default=None)
    return desc


_ARCH_KEYS = ("embed", "blocks", "head_dim", "depth", "num_heads", "mlp", "embed_orig")


def read_description(path: str | Path) -> dict:
    """``model.json`` of a pruned folder (or the file itself), checked against the format."""
    path = Path(path)
    arch_file = path / ARCH_FILE if path.is_dir() else path
    if not arch_file.is_file():
        raise SnpEdgeError(f"{path} is not a pruned model folder (no {ARCH_FILE})")
    return validate_description(read_json(arch_file, SnpEdgeError, max_bytes=16 << 20), str(arch_file))


def check_against_base(desc: dict, label: str) -> None:
    """What :func:`load_pruned_handle` checks before building the model, without building it (the meta
    device): the base model is a timm ViT this tool prunes, and every width and block index fits it."""
    from .arch import arch_of, check_arch
    from .vit import create_model

    base = create_model(desc["base_model"], desc.get("model_args") or {}, device="meta")
    check_arch(Arch.from_dict(desc["arch"]), arch_of(base), label)


def load_pruned_handle(path: str | Path) -> ModelHandle:
    """Rebuild a saved pruned model as a :class:`ModelHandle` (no original weights, no pickles): model.json
    is checked before anything is allocated, the weights against its sha256."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    desc = read_description(path)
    arch = Arch.from_dict(desc["arch"])
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise SnpEdgeError(f"{folder} has no {WEIGHTS_FILE}")
    if "weights_sha256" in desc and sha256_file(str(weights)) != desc["weights_sha256"]:
        raise SnpEdgeError(f"{weights} does not match the sha256 recorded in {folder / ARCH_FILE}: the file was "
                           "modified or copied incompletely")
    model = build_skeleton(desc["base_model"], desc.get("model_args") or {}, arch, str(folder / ARCH_FILE))
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise SnpEdgeError(f"corrupt {weights}: {first_line(exc)}") from None
    load_state_dict_checked(model, state, str(weights))
    return ModelHandle(model.eval(), desc["base_model"], desc.get("model_args") or {}, str(desc.get("weights") or folder),
                       accuracy_meaningful=bool(desc.get("accuracy_meaningful")), notice=desc.get("notice"),
                       arch=desc["arch"], name=f"{desc['base_model']} (SNP, {folder.name})")


def load_pruned(path: str | Path) -> nn.Module:
    """The pruned model saved in folder ``path``, in eval mode."""
    return load_pruned_handle(path).model
