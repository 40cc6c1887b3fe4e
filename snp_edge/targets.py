"""Pruning targets: per-layer configuration files, the paper's presets, and rounding (budgets: :mod:`.allocation`).

A target becomes an :class:`~snp_edge.arch.Arch` of kept widths. Configuration files (YAML or JSON)
give kept widths, or fractions removed under ``ratios:``; a single number applies to every block::

    embed: 345                    # residual width kept
    qk:  [26, 20, 20, 13, ...]    # query/key neurons kept per head, per block
    v:   12                       # value neurons kept per head, every block
    mlp: [1382, 1075, ...]        # FFN hidden neurons kept, per block
    heads: [6, 6, 4, ...]         # heads kept per block (optional: all)
    drop_blocks: [11]             # whole blocks removed (optional)
    # or: ratios: {embed: 0.1, qk: 0.6, v: [...], mlp: 0.5, heads: 0.5}
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import yaml

from .arch import Arch, BlockArch
from .engines.common.schema import check_finite_tree, is_int, is_number
from .errors import SnpEdgeError, first_line
from .macs import predict_macs
from .presets import list_presets, load_preset  # noqa: F401 (re-exported)

COMPONENTS = ("qk", "v", "mlp", "heads")
MAX_CONFIG_BYTES = 1 << 20


def read_config(path: str | Path) -> dict:
    """A YAML or JSON pruning configuration file as a dict."""
    path = Path(path)
    if not path.is_file():
        raise SnpEdgeError(f"config file not found: {path}")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise SnpEdgeError(f"config {path} is larger than {MAX_CONFIG_BYTES >> 10} KiB; not a pruning config")
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SnpEdgeError(f"cannot parse config {path}: {first_line(exc)}") from None
    except RecursionError:
        raise SnpEdgeError(f"cannot parse config {path}: nested too deeply") from None
    if not isinstance(data, dict):
        raise SnpEdgeError(f"config {path} must be a mapping with embed/qk/v/mlp/heads keys")
    check_finite_tree(data, f"config {path}", SnpEdgeError)  # YAML's .nan / .inf, JSON's NaN / Infinity
    return data


def signature(arch: Arch) -> dict:
    return {"embed": arch.embed_orig, "depth": arch.depth, "num_heads": arch.num_heads,
            "head_dim": arch.head_dim, "mlp": arch.mlp}


def _per_block(value, depth: int, key: str) -> list:
    if isinstance(value, list):
        if len(value) != depth:
            raise SnpEdgeError(f"config {key} lists {len(value)} values but the model has {depth} blocks")
        return value
    return [value] * depth


def _kept(orig: int, value, key: str, is_ratio: bool) -> int:
    if not is_number(value):
        raise SnpEdgeError(f"config {key}: expected a finite number, got {value!r}")
    if is_ratio:
        if not 0 <= value < 1:
            raise SnpEdgeError(f"config ratio {key}={value} is outside [0, 1)")
        kept = round(orig * (1 - value))
    else:
        if value != int(value):
            raise SnpEdgeError(f"config {key}={value}: kept widths are integers (use ratios: for fractions)")
        kept = int(value)
    if kept <= 0:
        raise SnpEdgeError(f"config {key} prunes the width to zero (kept {kept} of {orig}); keep at least 1")
    if kept > orig:
        raise SnpEdgeError(f"config {key} keeps {kept} but the model has only {orig}")
    return kept


def arch_from_config(config: dict, base: Arch, source: str = "config") -> Arch:
    """Kept widths from a configuration dict, checked against the unpruned model's ``base`` arch."""
    if "signature" in config and config["signature"] != signature(base):
        raise SnpEdgeError(f"{source} is for {config.get('model', 'another model')} {config['signature']}, "
                           f"not this model {signature(base)}")
    unknown = set(config) - {"embed", *COMPONENTS, "ratios", "drop_blocks", "model", "signature",
                             "description", "paper_gmacs"}
    if unknown:
        raise SnpEdgeError(f"{source}: unknown keys {sorted(unknown)}")
    ratios = config.get("ratios") or {}
    if not isinstance(ratios, dict) or set(ratios) - {"embed", *COMPONENTS}:
        raise SnpEdgeError(f"{source}: ratios must map embed/qk/v/mlp/heads to fractions removed")
    both = set(ratios) & set(config)
    if both:
        raise SnpEdgeError(f"{source}: {sorted(both)} given both as widths and as ratios")
    origs = {"qk": base.head_dim, "v": base.head_dim, "mlp": base.mlp, "heads": base.num_heads}

    def get(key: str, orig: int, block: int | None):
        is_ratio = key in ratios
        value = ratios[key] if is_ratio else config.get(key)
        if value is None:
            return orig
        if block is not None:
            value = _per_block(value, base.depth, key)[block]
        label = key if block is None else f"{key}[{block}]"
        return _kept(orig, value, label, is_ratio)

    drop = config.get("drop_blocks") or []
    if not isinstance(drop, list) or any(not is_int(i) or not 0 <= i < base.depth for i in drop):
        raise SnpEdgeError(f"{source}: drop_blocks must list block indices in [0, {base.depth})")
    if len(set(drop)) >= base.depth:
        raise SnpEdgeError(f"{source}: drop_blocks removes every block")
    blocks = [BlockArch(index=i, **{k: get(k, origs[k], i) for k in COMPONENTS})
              for i in range(base.depth) if i not in drop]
    return replace(base, embed=get("embed", base.embed_orig, None), blocks=blocks, heads_kept=[])


def round_arch(arch: Arch, multiple: int) -> Arch:
    """Round every pruned width to the nearest multiple of ``multiple`` (at least ``multiple``, at most the
    original); unpruned widths stay. Rounding can add MACs: :func:`fit_under` gives them back."""
    if multiple < 1:
        raise SnpEdgeError(f"--round-to must be >= 1, got {multiple}")
    if multiple == 1:
        return arch

    def down(width: int, orig: int) -> int:
        if width == orig:
            return width
        nearest = max(multiple, (2 * width + multiple) // (2 * multiple) * multiple)
        return nearest if nearest <= orig else orig // multiple * multiple

    blocks = [replace(b, qk=down(b.qk, arch.head_dim), v=down(b.v, arch.head_dim), mlp=down(b.mlp, arch.mlp))
              for b in arch.blocks]
    return replace(arch, embed=down(arch.embed, arch.embed_orig), blocks=blocks)


def fit_under(arch: Arch, limit: int, consts: dict, step: int) -> Arch:
    """Narrow the widest pruned FFN one ``step`` at a time until ``arch`` costs at most ``limit`` MACs.

    Rounding small widths up to one ``step`` (13 -> 16) can push a preset over its budget; the FFN,
    the cheapest place to give it back, pays for it.
    """
    while predict_macs(arch, **consts) > limit:
        j = max(range(len(arch.blocks)), key=lambda i: arch.blocks[i].mlp)
        b = arch.blocks[j]
        if b.mlp <= step:
            raise SnpEdgeError(f"--round-to {step} cannot stay under {limit / 1e9:.3f} GMACs")
        arch = replace(arch, blocks=[*arch.blocks[:j], replace(b, mlp=b.mlp - step), *arch.blocks[j + 1:]])
    return arch
