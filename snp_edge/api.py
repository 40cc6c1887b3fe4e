"""The host stage as one call: load a model, score it on calibration images once, choose widths, prune.

Widths come from a preset or a configuration (fixed per layer), or from a budget: ``target_gmacs``,
``target_latency`` (ms, with a latency table) or ``target_speedup`` (relative to the unpruned model in the
table). A budget is turned into widths by an allocator (:mod:`snp_edge.allocation`) from the same scores
that then choose which neurons stay. What to prune and how is one :class:`~snp_edge.spec.PruneSpec`
(:func:`prune_spec`); :func:`prune` builds one from flat keywords.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from .allocation import ALLOCATORS, GROUP_WEIGHTS, MEASURED, MacCost, allocate, structure, total_cost
from .arch import Arch, arch_of, check_arch
from .calib import check_model_outputs, load_calibration
from .criteria import COMPONENTS, DEFAULT_CRITERIA, DEFAULT_EMBED_SCORE, ScoreOptions, Scores, compute_scores
from .engines.latency_table import alignment
from .errors import SnpEdgeError, SnpEdgeWarning
from .macs import macs_constants, predict_macs
from .models import ModelHandle, load_model
from .spec import BUDGETS, TARGET_KEYS, PruneSpec, Target, round_to_for
from .sublayers import check_prunable
from .summary import summarize
from .surgery import apply_widths, choose_blocks, pruned_components
from .targets import arch_from_config, fit_under, load_preset, read_config, round_arch

DEFAULT_ALLOCATION = PruneSpec.scoring.allocation  # "score"
DEFAULT_RESCORE = PruneSpec.scoring.rescore  # False
DEFAULT_GROUP_WEIGHT = PruneSpec.scoring.group_weight  # "fisher" for every budget (docs/accuracy.md, issue 21)
RESCORED = ("qk", "v", "mlp")  # components re-scored after the residual cut (heads and blocks set the structure)


@dataclass
class PruneResult:
    """The pruned model, its before/after summary, and the recipe that made it (stored in model.json)."""

    handle: ModelHandle
    summary: dict
    recipe: dict


@dataclass
class Budget:
    """A cost model and the most it may count (``limit`` in ``cost.unit``)."""

    cost: object
    limit: float
    table: object | None = None  # the latency table behind a latency cost


def budget_of(handle: ModelHandle, target_gmacs: float | None = None, target_latency: float | None = None,
              target_speedup: float | None = None, latency_table: str | Path | None = None) -> Budget | None:
    """The budget named by at most one of the three targets (None: no budget target given)."""
    Target(target_gmacs=target_gmacs, target_latency=target_latency,
           target_speedup=target_speedup).require_one(BUDGETS, at_most=True)
    macs = MacCost(**macs_constants(handle.model))
    if target_gmacs is not None:
        if target_gmacs <= 0:
            raise SnpEdgeError(f"--target-gmacs must be positive, got {target_gmacs}")
        full = total_cost(macs, arch_of(handle.model)) / 1e9
        if target_gmacs >= full:
            warnings.warn(SnpEdgeWarning(f"--target-gmacs {target_gmacs:g} is not below the model's own "
                                         f"{full:.4g} GMACs: nothing is pruned for it"), stacklevel=3)
        return Budget(macs, target_gmacs * 1e9)
    if target_latency is None and target_speedup is None:
        if latency_table is not None:
            return Budget(macs, float("inf"), _latency(handle, latency_table, macs).table)
        return None
    if latency_table is None:
        raise SnpEdgeError("--target-latency and --target-speedup need --latency-table (made by snp-edge profile)")
    cost = _latency(handle, latency_table, macs)
    if target_latency is not None:
        if target_latency <= 0:
            raise SnpEdgeError(f"--target-latency must be positive, got {target_latency}")
        return Budget(cost, float(target_latency), cost.table)
    if target_speedup < 1:
        raise SnpEdgeError(f"--target-speedup must be >= 1, got {target_speedup}")
    return Budget(cost, total_cost(cost, arch_of(handle.model)) / target_speedup, cost.table)


def rescored(handle: ModelHandle, scores: Scores, arch: Arch, images, opts: ScoreOptions, wanted) -> Scores:
    """``scores`` with the query/key, value and FFN scores measured again after the residual cut: on the model
    with only ``arch``'s residual width removed (physically, so LayerNorm statistics and the weight norms the
    scores read are those of the narrower model), the neurons kept are then those that matter in it. The
    residual cut leaves every other index in place, so the new scores replace the old ones one for one.
    Unchanged when the residual width is whole or no re-scored component has a data-driven criterion."""
    base = arch_of(handle.model)
    comps = frozenset(c for c in RESCORED if c in wanted and opts.data_driven(c))
    if arch.embed >= base.embed or not comps:
        return scores
    narrow = apply_widths(handle, replace(base, embed=arch.embed), scores)
    again = compute_scores(narrow.model.eval(), images, opts, comps)
    return replace(scores, **{c: getattr(again, c) for c in comps})


def _latency(handle: ModelHandle, table: str | Path, macs: MacCost):
    from .latency import LatencyCost

    return LatencyCost.from_file(table, handle, macs)


def _allocate(handle: ModelHandle, allocation: str, shell: Arch, budget: Budget, round_to: int, scores: Scores,
              cal, batch_size: int, progress: bool, group_weight: str = DEFAULT_GROUP_WEIGHT,
              sublayers: bool = False) -> Arch:
    """:func:`~snp_edge.allocation.allocate`, with ``group_weight``'s probe (``loss``, ``fisher``:
    :data:`snp_edge.sensitivity.PROBES`) on ``cal``'s images when ``cal`` is given (``sublayers``: then a
    sublayer may be removed)."""
    if cal is None:
        return allocate(allocation, shell, budget.limit, budget.cost, round_to, scores)
    from .sensitivity import PROBES

    probe = PROBES[group_weight](handle, scores, cal.images, batch_size, progress)
    try:
        return allocate(allocation, shell, budget.limit, budget.cost, round_to, scores, probe, sublayers)
    finally:
        probe.close()


def target_arch(handle: ModelHandle, preset: str | None = None, config: str | Path | dict | None = None,
                target_gmacs: float | None = None, heads: int | None = None, round_to: int = 1) -> Arch:
    """Kept widths for ``handle``'s model from exactly one of a preset, a config, or a GMACs target.

    Without scores, a GMACs target is met by the ``uniform`` allocation (:func:`prune` allocates from the
    scores by default)."""
    Target(preset, config, target_gmacs).require_one(("preset", "config", "target_gmacs"))
    base = arch_of(handle.model)
    _check_heads(heads, base)
    if target_gmacs is not None:
        budget = budget_of(handle, target_gmacs=target_gmacs)
        return allocate("uniform", structure(base, None, 0, heads), budget.limit, budget.cost, round_to)
    return _fixed_arch(handle, base, preset, config, heads, round_to)


def _check_heads(heads: int | None, base: Arch) -> None:
    if heads is not None and not 0 < heads <= base.num_heads:
        raise SnpEdgeError(f"--heads {heads} is outside 1..{base.num_heads}")


def _fixed_arch(handle: ModelHandle, base: Arch, preset, config, heads: int | None, round_to: int) -> Arch:
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


def prune(model: str | ModelHandle, *, progress: bool = False, **options) -> PruneResult:
    """Prune a timm DeiT/ViT with SNP. See ``snp-edge prune --help`` for the meaning of each option.

    ``options`` are :meth:`PruneSpec.of <snp_edge.spec.PruneSpec.of>`'s keywords (``weights``, ``preset``,
    ``target_gmacs``, ``calib``, ``criteria``, ``round_to``, ...); ``model`` a timm name or a loaded handle."""
    handle = model if isinstance(model, ModelHandle) else None
    return prune_spec(PruneSpec.of(handle.base_model if handle else model, **options), handle, progress)


def prune_spec(spec: PruneSpec, handle: ModelHandle | None = None, progress: bool = False) -> PruneResult:
    """Prune ``spec.model`` (or the loaded ``handle``) as ``spec`` says.

    ``round_to`` None: :func:`~snp_edge.spec.round_to_for` (the device targets' multiple, else the latency
    table's alignment for ``target_latency`` / ``target_speedup``, else 1). ``group_weight`` ``auto``: an alias of
    ``fisher``, the default for every budget (:mod:`snp_edge.allocation`)."""
    t, cs, sc, al = spec.target, spec.calibration, spec.scoring, spec.alignment
    preset, config, target_latency, latency_table = t.preset, t.config, t.target_latency, t.latency_table
    criteria, allocation, group_weight, heads = sc.criteria, sc.allocation, sc.group_weight, al.heads
    seed, batch_size = cs.seed, cs.batch_size
    handle = handle or load_model(spec.model, spec.weights, spec.model_args)
    if criteria is None:
        criteria = dict(DEFAULT_CRITERIA)
    elif isinstance(criteria, str):
        criteria = dict.fromkeys(COMPONENTS, criteria)
    embed_score = sc.embed_score or DEFAULT_EMBED_SCORE
    opts = ScoreOptions(criteria=criteria, gamma=sc.gamma, ffn_score=sc.ffn_score, embed_score=embed_score,
                        seed=seed, batch_size=batch_size)
    if allocation not in ALLOCATORS:
        raise SnpEdgeError(f"unknown allocation {allocation!r}; use one of {', '.join(ALLOCATORS)}")
    if group_weight not in ("auto", *GROUP_WEIGHTS):
        raise SnpEdgeError(f"unknown group weight {group_weight!r}; use one of auto, {', '.join(GROUP_WEIGHTS)}")
    check_prunable(handle.model)
    base = arch_of(handle.model)
    _check_heads(heads, base)
    t.require_one(TARGET_KEYS)
    budget = budget_of(handle, t.target_gmacs, target_latency, t.target_speedup, latency_table)
    has_budget = budget is not None and budget.limit != float("inf")
    round_to = round_to_for(al.round_to, al.device_targets,
                            alignment(budget.table) if has_budget and budget.table is not None else None)
    if group_weight == "auto":
        group_weight = DEFAULT_GROUP_WEIGHT
    measured = has_budget and allocation == "score" and group_weight in MEASURED
    if has_budget:
        wanted = {"qk", "v", "mlp", "embed"} | ({"heads"} if heads and heads < base.num_heads else set()) | \
            ({"blocks"} if al.drop_blocks else set())
        arch = None
    else:
        arch = _fixed_arch(handle, base, preset, config, heads, round_to)
        check_arch(arch, base)
        wanted = pruned_components(arch, base, al.drop_blocks)
    needs_data = measured or any(c in wanted and opts.data_driven(c) for c in COMPONENTS)
    cal = load_calibration(cs.source, cs.images, handle.data_config, seed) if needs_data or cs.source else None
    check_model_outputs(handle.model, cal.images if cal is not None else  # degenerate outputs: refused first
                        load_calibration(None, 4, handle.data_config, seed).images)
    scores = compute_scores(handle.model.eval(), cal.images if cal is not None else None, opts, frozenset(wanted),
                            progress)
    if arch is None:
        shell = structure(base, scores, al.drop_blocks, heads)
        arch = _allocate(handle, allocation, shell, budget, round_to, scores, cal if measured else None,
                         batch_size, progress, group_weight, sc.sublayers)
    else:
        arch = choose_blocks(scores, arch, al.drop_blocks)
    if sc.rescore:
        scores = rescored(handle, scores, arch, cal.images if cal is not None else None, opts, wanted)
    pruned = apply_widths(handle, arch, scores)
    notices = [n for n in (handle.notice, cal.notice if cal else None) if n]
    pruned.notice = "; ".join(notices) or None
    summary = summarize(pruned, before=handle)
    if budget is not None and budget.table is not None:
        from .latency import predicted_summary

        summary.update(predicted_summary(budget.table, handle, arch))
    recipe = {
        "target": {"preset": preset, "config": str(config) if config is not None and not isinstance(config, dict)
                   else config, "target_gmacs": t.target_gmacs, "target_latency_ms": target_latency,
                   "target_speedup": t.target_speedup, "latency_table": str(latency_table) if latency_table else None,
                   "heads": heads, "drop_blocks": al.drop_blocks, "round_to": round_to,
                   "allocation": allocation if has_budget else None,
                   "group_weight": group_weight if has_budget and allocation == "score" else None,
                   "budget": {"limit": budget.limit, "unit": budget.cost.unit} if has_budget else None},
        "criteria": opts.criteria, "snp_gamma": sc.gamma, "ffn_score": sc.ffn_score, "embed_score": embed_score,
        "calibration": {"source": cal.source if cal else None, "images": len(cal.images) if cal else 0, "seed": seed},
        "rescore": sc.rescore,
        "sublayers": sc.sublayers and measured,  # whether a sublayer could be cut to zero width
    }
    return PruneResult(pruned, summary, recipe)
