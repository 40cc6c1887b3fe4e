"""The standard comparison in one run: an unpruned model, its SNP-pruned versions and reference models
(DeiT-Tiny by default), all benchmarked together, interleaved."""

from __future__ import annotations

import logging

from snp_edge.errors import SnpEdgeError

from .candidates import Candidate, from_handle

log = logging.getLogger(__name__)

DEFAULT_REFERENCES = ("deit_tiny_patch16_224",)


def compare_candidates(model: str, presets: list[str], target_gmacs: list[float], weights: str = "auto",
                       model_args: dict | None = None, references: list[str] | tuple[str, ...] = DEFAULT_REFERENCES,
                       calib: str | None = None, round_to: int = 1) -> list[Candidate]:
    """Candidates in report order: ``model`` (the baseline), one SNP version per preset and per GMACs
    target (pruned in memory), then each reference model. ``model_args`` apply to every model built;
    ``round_to`` rounds the pruned widths to multiples of it (see ``snp-edge prune --round-to``)."""
    from snp_edge import load_model, prune

    if not presets and not target_gmacs:
        raise SnpEdgeError("give at least one --preset or --target-gmacs to compare against")
    base = load_model(model, weights, model_args)
    cands = [from_handle(base, model, role="unpruned")]
    targets = [("preset", p, p) for p in presets] + [("target_gmacs", g, f"{g:g} GMACs") for g in target_gmacs]
    for key, value, tag in targets:
        log.info("pruning %s to %s", model, tag)
        pruned = prune(base, **{key: value}, calib=calib, round_to=round_to).handle
        tag += f", round-to {round_to}" if round_to > 1 else ""
        cands.append(from_handle(pruned, f"{key} {value}", role="pruned", label=f"{model} + SNP ({tag})",
                                 extra={"preset": tag}))
    for ref in references:
        if ref != model:
            cands.append(from_handle(load_model(ref, weights, model_args), ref, role="reference"))
    return cands
