"""The host stage as one call: load a model, choose widths, score on calibration images, prune."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from .arch import Arch, arch_of
from .calib import load_calibration
from .criteria import COMPONENTS, DEFAULT_CRITERIA, ScoreOptions
from .errors import SnpEdgeError, SnpEdgeWarning
from .macs import macs_constants, predict_macs
from .models import ModelHandle, load_model
from .summary import summarize
from .surgery import prune_model, pruned_components
from .targets import arch_for_gmacs, arch_from_config, fit_under, load_preset, read_config, round_arch


@dataclass
class PruneResult:
    """The pruned model, its before/after summary, and the recipe that made it (stored in model.json)."""

    handle: ModelHandle
    summary: dict
    recipe: dict


def target_arch(handle: ModelHandle, preset: str | None = None, config: str | Path | dict | None = None,
                target_gmacs: float | None = None, heads: int | None = None, round_to: int = 1) -> Arch:
    """Kept widths for ``handle``'s model from exactly one of a preset, a config, or a GMACs target."""
    if sum(x is not None for x in (preset, config, target_gmacs)) != 1:
        raise SnpEdgeError("give exactly one of --preset, --config, --target-gmacs")
    base = arch_of(handle.model)
    if heads is not None and not 0 < heads <= base.num_heads:
        raise SnpEdgeError(f"--heads {heads} is outside 1..{base.num_heads}")
    if target_gmacs is not None:
        if target_gmacs <= 0:
            raise SnpEdgeError(f"--target-gmacs must be positive, got {target_gmacs}")
        consts = macs_constants(handle.model)
        full = predict_macs(base, **consts) / 1e9
        if target_gmacs >= full:
            warnings.warn(SnpEdgeWarning(f"--target-gmacs {target_gmacs:g} is not below the model's own "
                                         f"{full:.4g} GMACs: nothing is pruned for it"), stacklevel=2)
        return arch_for_gmacs(base, target_gmacs, consts, round_to, heads=[heads] * base.depth if heads else None)
    if preset is not None:
        cfg, source = load_preset(preset), f"preset {preset}"
    elif isinstance(config, dict):
        cfg, source = config, "config"
    else:
        cfg, source = read_config(config), str(config)
    if heads is not None:
        cfg = {**cfg, "heads": heads}
    arch = arch_from_config(cfg, base, source)
    consts = macs_constants(handle.model)
    return fit_under(round_arch(arch, round_to), predict_macs(arch, **consts), consts, round_to)


def prune(model: str | ModelHandle, *, weights: str = "auto", model_args: dict | None = None,
          preset: str | None = None, config: str | Path | dict | None = None, target_gmacs: float | None = None,
          calib: str | Path | None = None, calib_images: int = 64, seed: int = 0,
          criteria: dict[str, str] | str | None = None, gamma: int = 8, ffn_score: str = "act",
          embed_score: str = "l1", heads: int | None = None, drop_blocks: int = 0, round_to: int = 1,
          batch_size: int = 16, progress: bool = False) -> PruneResult:
    """Prune a timm DeiT/ViT with SNP. See ``snp-edge prune --help`` for the meaning of each option."""
    handle = model if isinstance(model, ModelHandle) else load_model(model, weights, model_args)
    if criteria is None:
        criteria = dict(DEFAULT_CRITERIA)
    elif isinstance(criteria, str):
        criteria = dict.fromkeys(COMPONENTS, criteria)
    opts = ScoreOptions(criteria=criteria, gamma=gamma, ffn_score=ffn_score, embed_score=embed_score,
                        seed=seed, batch_size=batch_size)
    arch = target_arch(handle, preset, config, target_gmacs, heads, round_to)
    wanted = pruned_components(arch, arch_of(handle.model), drop_blocks)
    needs_data = any(c in wanted and opts.data_driven(c) for c in COMPONENTS)
    cal = load_calibration(calib, calib_images, handle.data_config, seed) if needs_data or calib else None
    pruned = prune_model(handle, arch, cal, opts, drop_blocks, progress)
    notices = [n for n in (handle.notice, cal.notice if cal else None) if n]
    pruned.notice = "; ".join(notices) or None
    summary = summarize(pruned, before=handle)
    recipe = {
        "target": {"preset": preset, "config": str(config) if config is not None and not isinstance(config, dict)
                   else config, "target_gmacs": target_gmacs, "heads": heads, "drop_blocks": drop_blocks,
                   "round_to": round_to},
        "criteria": opts.criteria, "snp_gamma": gamma, "ffn_score": ffn_score, "embed_score": embed_score,
        "calibration": {"source": cal.source if cal else None, "images": len(cal.images) if cal else 0, "seed": seed},
    }
    return PruneResult(pruned, summary, recipe)
