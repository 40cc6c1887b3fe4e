"""Width allocation: how many neurons each block and component keeps under a budget (MACs, or milliseconds).

A budget target (``--target-gmacs``, ``--target-latency``, ``--target-speedup``) names a total cost; an
allocator turns it into kept widths (an :class:`~snp_edge.arch.Arch`). Allocators are registered by name in
:data:`ALLOCATORS` (``--allocation``):

``score`` (default)
    The paper's global threshold made cost-aware, in the manner of Torch-Pruning's global pruning. Every
    prunable width is a *group* (the residual width; per kept block the query/key pairs, the value neurons
    and the FFN neurons); its units are ranked by their criterion score normalised by the group's mean
    (scores of different criteria, components and blocks are not on one scale; their ratio to the group's
    mean is). Units are removed in *steps* that keep the model dense: one query/key pair or value neuron
    from every kept head of a block at once (equal widths across heads, pairs stay pairs), ``--round-to``
    neurons at a time. A step's importance is the sum of its units' normalised scores weighted by the MACs
    each unit computes (a unit is presumed worth the compute it does, scaled by how it ranks in its group);
    steps are removed in increasing order of importance per unit of cost, globally, until the model costs
    at most the budget; the steps that still fit are then given back, most important per cost first. With
    the MAC cost this is exactly a global threshold on the normalised scores; with a latency table
    (:mod:`snp_edge.latency`) steps that save more milliseconds per MAC go first, so widths move to what is
    fast on the profiled device.

    *Group weights* (``--group-weight``) say what a group's units are worth against other groups': ``loss``:
    a sensitivity analysis. Each group is cut alone to the kept fractions :data:`PROBE_KEPT` of its width
    (7/8, 3/4, 1/2, 1/4, smallest; its least important units first) and the loss of the cut model is measured
    (a :data:`Probe`; :class:`snp_edge.sensitivity.KLProbe`: the KL divergence of its predictions from the
    unpruned model's on the calibration images, on one masked model); a step's importance is that loss curve,
    interpolated along the group's cumulative normalised score. When the widths found cut the residual width,
    the blocks' groups are probed again on top of that cut and the widths allocated again (every block reads
    the narrower stream: the losses do not simply add). ``fisher`` (the default for every budget, issue 21):
    the same curves estimated, not measured (:class:`snp_edge.sensitivity.FisherProbe`: every rung of every
    group from one forward and two backward passes at the base, second order in the channel masks, put on the
    measured scale per component kind by a few real probes, the smallest width probed for real for the groups
    the allocation reaches it in (then allocated again; :func:`confirm_deferred`); a fraction of the probes
    ``loss`` runs, as good on docs/accuracy.md's comparison). Or ``macs``: a unit is
    worth the compute it does, scaled by how it ranks in its group; then only the ranking inside groups
    matters under a MAC cost, and the cut follows each criterion's spread of scores rather than what the
    layers are worth (at 30% of the MACs it kept 7.5 points less than ``loss`` before fine-tuning,
    docs/accuracy.md).
``uniform``
    Scores ignored: every component keeps the fraction ``1 - s * weight`` of its width (the residual width
    weighted 0.35), ``s`` found by bisection, then layers are widened one rounding step at a time while the
    budget allows (FFN first, then values, then query/key pairs, last block first).

Blocks (``--drop-blocks``) and heads (``--heads``) are chosen first, by their scores; widths are allocated
over what remains (:func:`structure`). Every allocator lands within 2% under the budget or says why not.

Zero widths (``sublayers``, with measured ``loss`` or ``fisher`` weights): the ladders of a block's FFN and of its values
end at 0, which removes the FFN, or the attention as a whole (its query/key pairs go with the values), from
the model (:mod:`snp_edge.sublayers`): the probe measures the loss of the removed branch, and the cost counts
it as nothing (no MACs, 0 ms in a latency table). So a sublayer goes where the loss says it is free.

Costs implement :class:`Cost`: a fixed part that depends on the residual width (patch embedding, classifier)
plus one term per block, so a change of one block's widths costs one term to re-evaluate.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch

from .arch import Arch, BlockArch, canonical
from .criteria import Scores
from .errors import SnpEdgeError
from .macs import block_macs
from .surgery import choose_blocks, top_indices
from .targets import round_arch

TOLERANCE = 0.02  # every allocation lands in [(1 - TOLERANCE) * budget, budget]
GROUP_WEIGHTS = ("macs", "loss", "fisher")  # what a group's units are worth against other groups' (docstring)
MEASURED = ("loss", "fisher")  # group weights measured by a Probe (snp_edge.sensitivity.PROBES)
PROBE_KEPT = (0.875, 0.75, 0.5, 0.25, 0.0)  # fractions of a group's width its loss is measured at (0: the
# ladder's last); 1/2, 1/4, 0 alone made small cuts look costly (issue 21)

Probe = Callable[["Arch"], float]  # loss of the unpruned model cut to the widths of an Arch (>= 0)


class Cost(Protocol):
    """What a pruning budget counts. ``unit`` names it ("MACs", "ms")."""

    unit: str

    def fixed(self, embed: int) -> float:
        """Cost outside the blocks (patch embedding, tokens, final norm, classifier) at residual width ``embed``."""

    def block(self, embed: int, block: BlockArch) -> float:
        """Cost of one transformer block of widths ``block`` on residual width ``embed``."""

    def smallest(self, comp: str) -> int:
        """Narrowest width of ``comp`` ("embed", "qk", "v", "mlp") the cost knows (a latency table does not
        extrapolate below what it measured)."""


def total_cost(cost: Cost, arch: Arch) -> float:
    return cost.fixed(arch.embed) + sum(cost.block(arch.embed, b) for b in arch.blocks)


@dataclass(frozen=True)
class MacCost:
    """Multiply-accumulates, exactly :func:`snp_edge.macs.predict_macs` (build it from ``macs_constants``)."""

    tokens: int
    patch_macs_per_channel: int
    head_outputs: int
    unit: str = "MACs"

    def fixed(self, embed: int) -> float:
        return embed * (self.patch_macs_per_channel + self.head_outputs)

    def block(self, embed: int, block: BlockArch) -> float:
        return block_macs(embed, block, self.tokens)

    def smallest(self, comp: str) -> int:
        return 1


def structure(base: Arch, scores: Scores | None, drop_blocks: int = 0, heads: int | None = None) -> Arch:
    """The unpruned widths of the blocks that stay (the ``drop_blocks`` least important removed by the block
    scores) with ``heads`` heads each (which heads: :func:`kept_heads`)."""
    shell = replace(base, blocks=[replace(b, heads=heads or b.heads) for b in base.blocks], heads_kept=[])
    if drop_blocks:
        if scores is None:
            raise SnpEdgeError("--drop-blocks needs block scores")
        shell = choose_blocks(scores, shell, drop_blocks)
    return shell


def kept_heads(scores: Scores, block: BlockArch) -> list[int]:
    """Original indices of the ``block.heads`` most important heads of block ``block.index``."""
    return top_indices(scores.heads[block.index], block.heads).tolist()


# ----------------------------------------------------------------------------------------------- registry

Allocator = Callable[..., Arch]  # (shell, budget, cost, round_to, scores, probe=None) -> Arch
ALLOCATORS: dict[str, Allocator] = {}


def register(name: str) -> Callable[[Allocator], Allocator]:
    def add(fn: Allocator) -> Allocator:
        ALLOCATORS[name] = fn
        return fn

    return add


def allocate(name: str, shell: Arch, budget: float, cost: Cost, round_to: int = 1,
             scores: Scores | None = None, probe: Probe | None = None, sublayers: bool = False) -> Arch:
    """Kept widths of ``shell``'s blocks for at most ``budget`` (in ``cost.unit``), within 2%.

    Args:
        name: allocator (see :data:`ALLOCATORS`).
        shell: the blocks that stay, with their heads, at full width (:func:`structure`).
        round_to: every pruned width a multiple of this.
        scores: the criterion's scores of the unpruned model (the ``score`` allocator needs them).
        probe: measured group weights (``loss``) for the ``score`` allocator; None: ``macs``.
        sublayers: with a ``probe``, an FFN or an attention may be cut to zero width (removed; the result is
            :func:`~snp_edge.arch.canonical`: 0 heads for a removed attention).
    """
    if name not in ALLOCATORS:
        raise SnpEdgeError(f"unknown allocation {name!r}; use one of {', '.join(ALLOCATORS)}")
    if round_to < 1:
        raise SnpEdgeError(f"--round-to must be >= 1, got {round_to}")
    if total_cost(cost, shell) <= budget:
        return shell
    arch = canonical(ALLOCATORS[name](shell, budget, cost, round_to, scores, probe=probe, sublayers=sublayers))
    got = total_cost(cost, arch)
    if not (1 - TOLERANCE) * budget <= got <= budget:
        raise SnpEdgeError(f"{name} allocation reached {_fmt(got, cost)}, not within 2% under the target "
                           f"{_fmt(budget, cost)}; try a smaller --round-to")
    return arch


def _fmt(value: float, cost: Cost) -> str:
    return f"{value / 1e9:.3f} GMACs" if cost.unit == "MACs" else f"{value:.3f} {cost.unit}"


# ------------------------------------------------------------------------------------------ score-driven


def ladder(orig: int, step: int, zero: bool = False) -> list[int]:
    """Widths a group may take, widest first: ``orig``, then the multiples of ``step`` below it, down to
    ``step`` (or 1 when ``step`` is 1), then 0 when ``zero`` (the sublayer removed)."""
    top = orig if orig % step == 0 else orig // step * step
    widths = [orig] + list(range(top, step - 1, -step))
    return list(dict.fromkeys(w for w in widths if w >= 1)) + ([0] if zero and orig > 0 else [])


ZERO_COMPS = ("v", "mlp")  # groups whose ladder may end at 0: the attention (values, then query/key too), the FFN


@dataclass
class _Group:
    """One prunable width: ``comp`` of block position ``pos`` (None: the residual width)."""

    comp: str
    pos: int | None
    widths: list[int]  # the ladder
    removed: torch.Tensor  # (steps,): normalised score removed by each step (units sorted ascending)
    units: int  # units removed per neuron of width (heads for qk/v, else 1)
    loss: torch.Tensor | None = None  # (steps,): measured loss each step adds (group weight ``loss``)
    probed: tuple | None = None  # (shell, offset, ladder positions, losses there) the curve comes from
    deferred: list[int] | None = None  # ladder positions whose loss is an estimate a real probe may replace


def _unit_scores(scores: Scores, shell: Arch) -> dict[tuple[str, int | None], torch.Tensor]:
    """(comp, block position) -> unit scores (rows: kept heads, or one row), non-negative."""
    out = {("embed", None): scores.embed[None, :]}
    for pos, b in enumerate(shell.blocks):
        heads = kept_heads(scores, b)
        out[("qk", pos)] = scores.qk[b.index][heads]
        out[("v", pos)] = scores.v[b.index][heads]
        out[("mlp", pos)] = scores.mlp[b.index][None, :]
    return {k: v.double().clamp_min(0) for k, v in out.items()}


def _groups(shell: Arch, scores: Scores, step: int, cost: Cost | None = None, zero: bool = False) -> list[_Group]:
    """The allocator's groups of ``shell``; ``zero``: the ladders of :data:`ZERO_COMPS` end at 0 (a removed
    sublayer costs nothing in every cost, so the cost's ``smallest`` width does not bound it)."""
    groups = []
    for (comp, pos), s in _unit_scores(scores, shell).items():
        mean = s.mean()
        s = s / mean if mean > 0 else torch.ones_like(s)
        ordered = s.sort(dim=1).values.sum(0)  # (width,): the k-th least important neuron of every row, summed
        floor = cost.smallest(comp) if cost is not None else 1
        widths = [w for w in ladder(s.shape[1], step, zero and comp in ZERO_COMPS) if w >= floor or w == 0]
        widths = widths if widths and widths[0] else [s.shape[1]]
        cum = torch.cat([torch.zeros(1, dtype=ordered.dtype), ordered.cumsum(0)])
        removed = torch.tensor([cum[s.shape[1] - widths[t + 1]] - cum[s.shape[1] - widths[t]]
                                for t in range(len(widths) - 1)], dtype=torch.float64)
        groups.append(_Group(comp, pos, widths, removed, s.shape[0]))
    return groups


def measure_loss(groups: list[_Group], shell: Arch, probe: Probe, kept: tuple[float, ...] = PROBE_KEPT) -> None:
    """Set every group's ``loss``: ``probe`` at the ladder widths nearest under ``kept`` fractions of its
    width (the group alone cut from ``shell``), less the loss of ``shell`` itself (blocks or heads removed, or
    a residual cut made already), made non-decreasing, interpolated linearly in the cumulative normalised
    score removed (the ranking inside the group shapes the curve between probes). A probe with a ``rebase``
    method is told ``shell`` first (:class:`snp_edge.sensitivity.KLProbe` keeps what the probes share)."""
    rebase = getattr(probe, "rebase", None)
    if rebase is not None:
        rebase(shell)
    offset = probe(shell)
    deferred = getattr(probe, "deferred", None)
    for g in groups:
        at = sorted({next((t for t, w in enumerate(g.widths) if w <= max(1, int(g.widths[0] * fraction))),
                          len(g.widths) - 1) for fraction in kept} - {0} | _removal_probes(g))
        archs = [_with_width(shell, g, g.widths[t]) for t in at]
        g.probed = shell, offset, at, [probe(a) for a in archs]
        g.deferred = [t for t, a in zip(at, archs, strict=True) if deferred is not None and deferred(a)]
        _set_curve(g)


def _set_curve(g: _Group) -> None:
    """``g.loss`` from its probes (``g.probed``): see :func:`measure_loss`."""
    _shell, offset, at, losses = g.probed
    measured = torch.tensor([offset, *losses], dtype=torch.float64) - offset
    if not torch.isfinite(measured).all():
        raise SnpEdgeError(f"the loss probe of {g.comp} (block {g.pos}) is not finite: {measured.tolist()}")
    measured = torch.cummax(measured.clamp_min(0), 0).values
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), g.removed.cumsum(0)])
    g.loss = _interp(cum, cum[[0, *at]], measured).diff()


def confirm_deferred(groups: list[_Group], arch: Arch, probe: Probe) -> bool:
    """Replace the first estimated loss (``g.deferred``) of every group that ``arch``'s widths reach by the
    probe's ``exact`` one; whether any changed. A group reaches it when its width is at or below the ladder
    width probed before it: only then can that loss move the allocation (a step's worth is non-decreasing
    along a group's ladder, so a group above that width never takes a step whose worth depends on it; a
    later deferred loss, the sublayer removed after its narrowest width, waits for the group to reach the
    narrowest width)."""
    exact = getattr(probe, "exact", None)
    changed = False
    for g in groups:
        if not g.deferred or exact is None:
            continue
        shell, offset, at, losses = g.probed
        j = at.index(g.deferred[0])
        if _width(arch, g) > g.widths[at[j - 1] if j else 0]:
            continue
        losses = [*losses[:j], exact(_with_width(shell, g, g.widths[at[j]])), *losses[j + 1:]]
        g.probed, g.deferred, changed = (shell, offset, at, losses), g.deferred[1:], True
        _set_curve(g)
    return changed


def _width(arch: Arch, g: _Group) -> int:
    return arch.embed if g.pos is None else getattr(arch.blocks[g.pos], g.comp)


def _removal_probes(group: _Group) -> set[int]:
    """Ladder positions probed beside the kept fractions when a ladder ends at 0 (the sublayer removed): the
    narrowest width and 0, so the loss of removing the branch falls on that one step."""
    n = len(group.widths)
    return {n - 2, n - 1} - {0} if n >= 2 and group.widths[-1] == 0 else set()


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``fp(xp)`` at ``x`` (``xp`` non-decreasing, ``x`` within its range)."""
    i = torch.searchsorted(xp, x, right=True).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    span = x1 - x0
    return torch.where(span > 0, f0 + (f1 - f0) * (x - x0) / span.clamp_min(1e-300), f1)


def _with_width(arch: Arch, group: _Group, width: int) -> Arch:
    out = copy.copy(arch)  # dataclasses.replace, without its per-call introspection (the allocator's hot path)
    if group.pos is None:
        out.embed = width
    else:
        out.blocks = list(arch.blocks)
        out.blocks[group.pos] = _block_with(arch.blocks[group.pos], group.comp, width)
    return out


def _block_with(b: BlockArch, comp: str, width: int) -> BlockArch:
    """``b`` with ``comp`` ("qk", "v", "mlp") at ``width``."""
    return BlockArch(b.index, b.heads, width if comp == "qk" else b.qk, width if comp == "v" else b.v,
                     width if comp == "mlp" else b.mlp)


def _ladder_costs(cost: Cost, arch: Arch, g: _Group) -> torch.Tensor:
    """(widths,): the cost of what group ``g`` changes (a block's term; every term for the residual width) at
    each of its ladder widths, the other widths as in ``arch``."""
    if g.pos is None:
        values = [cost.fixed(w) + sum(cost.block(w, b) for b in arch.blocks) for w in g.widths]
    else:
        b = arch.blocks[g.pos]
        values = [cost.block(arch.embed, _block_with(b, g.comp, w)) for w in g.widths]
    return torch.tensor(values, dtype=torch.float64)


class _Walk:
    """Widths and total cost as steps are removed or restored one at a time (one block term re-evaluated); the
    widths are held as the residual width and a list of blocks, and made an :class:`Arch` only when asked."""

    def __init__(self, shell: Arch, cost: Cost) -> None:
        self.shell, self.cost = shell, cost
        self.embed, self.blocks = shell.embed, list(shell.blocks)
        self.terms = [cost.block(shell.embed, b) for b in shell.blocks]
        self.fixed = cost.fixed(shell.embed)

    @property
    def arch(self) -> Arch:
        out = copy.copy(self.shell)  # dataclasses.replace, without its per-call introspection
        out.embed, out.blocks = self.embed, list(self.blocks)
        return out

    @property
    def total(self) -> float:
        return self.fixed + sum(self.terms)

    def total_with(self, group: _Group, width: int) -> float:
        """The total with ``group`` at ``width`` (nothing changed)."""
        if group.pos is None:
            return self.cost.fixed(width) + sum(self.cost.block(width, b) for b in self.blocks)
        b = self.blocks[group.pos]
        return self.total - self.terms[group.pos] + self.cost.block(self.embed, _block_with(b, group.comp, width))

    def set(self, group: _Group, width: int) -> None:
        if group.pos is None:
            self.embed = width
            self.fixed = self.cost.fixed(width)
            self.terms = [self.cost.block(width, b) for b in self.blocks]
        else:
            b = self.blocks[group.pos] = _block_with(self.blocks[group.pos], group.comp, width)
            self.terms[group.pos] = self.cost.block(self.embed, b)

    def state(self) -> tuple:
        """A copy of the widths and costs, for :meth:`restore` (once)."""
        return self.embed, list(self.blocks), list(self.terms), self.fixed

    def restore(self, state: tuple) -> None:
        self.embed, self.blocks, self.terms, self.fixed = state


def _step_keys(groups: list[_Group], arch: Arch, cost: Cost, macs: MacCost) -> list[torch.Tensor]:
    """Importance per unit of cost of every step of every group, at the widths of ``arch`` for the others.

    Importance: the normalised scores removed x the MACs per neuron (group weight ``macs``), or the measured
    loss the step adds (``loss``); cost: what the step saves. With the MAC cost and ``macs`` weights that is
    the mean normalised score of the step's units. Keys are made non-decreasing along each ladder (a step can
    only go after the ones above it)."""
    keys = []
    for g in groups:
        steps = range(len(g.removed))
        neurons = torch.tensor([g.widths[t] - g.widths[t + 1] for t in steps], dtype=torch.float64)
        k = g.removed / (neurons * g.units)  # the mean normalised score of the step's units
        if g.loss is not None or cost is not macs:
            saved = (-_ladder_costs(cost, arch, g).diff()).clamp_min(1e-12)
            worth = g.loss if g.loss is not None else k * -_ladder_costs(macs, arch, g).diff()
            k = worth / saved  # a step that saves nothing stays
        keys.append(torch.cummax(k, 0).values)
    return keys


@register("score")
def score_driven(shell: Arch, budget: float, cost: Cost, round_to: int, scores: Scores | None,
                 probe: Probe | None = None, macs: MacCost | None = None, rounds: int = 3,
                 reprobe: bool = True, kept: tuple[float, ...] = PROBE_KEPT, sublayers: bool = False) -> Arch:
    """See the module docstring. ``probe``: group weights ``loss`` measured with it (None: ``macs``);
    ``macs`` (for the ``macs`` weights) defaults to ``cost`` when that is a :class:`MacCost`; ``rounds``:
    re-rankings at the widths found (step costs depend on the other widths); ``reprobe``: when the widths
    found cut the residual width, the blocks' groups are probed again on the model with that residual width
    (their losses do not add to the residual cut's: every block reads the narrower stream) and the widths
    allocated again; ``kept``: the probe ladder (:func:`measure_loss`); ``sublayers``: with a ``probe``, the
    ladders of :data:`ZERO_COMPS` end at 0 (the module docstring)."""
    if scores is None:
        raise SnpEdgeError("the score allocation needs the criterion's scores")
    macs = macs or getattr(cost, "macs", None) or cost
    if not isinstance(macs, MacCost):
        raise SnpEdgeError("the score allocation needs a MAC count beside a latency cost")
    groups = _groups(shell, scores, round_to, cost, zero=sublayers and probe is not None)
    if probe is not None:
        measure_loss(groups, shell, probe, kept)
    arch = _allocate_steps(shell, budget, cost, macs, groups, rounds)
    while probe is not None and confirm_deferred(groups, arch, probe):
        arch = _allocate_steps(shell, budget, cost, macs, groups, rounds)
    if probe is not None and reprobe and arch.embed < shell.embed:
        measure_loss([g for g in groups if g.pos is not None], replace(shell, embed=arch.embed), probe, kept)
        arch = _allocate_steps(shell, budget, cost, macs, groups, rounds)
        while confirm_deferred(groups, arch, probe):
            arch = _allocate_steps(shell, budget, cost, macs, groups, rounds)
    return arch


def _allocate_steps(shell: Arch, budget: float, cost: Cost, macs: MacCost, groups: list[_Group],
                    rounds: int) -> Arch:
    """Steps removed globally by importance per cost, given back, exchanged (see the module docstring)."""
    at, arch = shell, shell
    for _ in range(rounds):
        keys = _step_keys(groups, at, cost, macs)
        order = sorted(((float(k), gi, t) for gi, ks in enumerate(keys) for t, k in enumerate(ks)))
        walk = _Walk(shell, cost)
        depth = [0] * len(groups)  # steps removed per group
        for _key, gi, t in order:
            if walk.total <= budget:
                break
            if t != depth[gi]:  # equal keys out of ladder order: take the ladder's next step instead
                t = depth[gi]
            walk.set(groups[gi], groups[gi].widths[t + 1])
            depth[gi] += 1
        if walk.total > budget:
            raise SnpEdgeError(f"the target {_fmt(budget, cost)} is below the smallest model this allocation can "
                               f"reach ({_fmt(walk.total, cost)})")
        arch = _give_back(walk, groups, depth, keys, budget)
        if walk.total < (1 - TOLERANCE) * budget:
            arch = _exchange(walk, groups, depth, keys, budget)
        if arch == at:
            break
        at = arch
    return arch


def _give_back(walk: _Walk, groups: list[_Group], depth: list[int], keys: list[torch.Tensor],
               budget: float) -> Arch:
    """Restore removed steps (the most important per cost first) while the total stays within ``budget``."""
    while True:
        best = None
        for gi, g in enumerate(groups):
            if depth[gi] == 0:
                continue
            t = depth[gi] - 1
            fits = walk.total_with(g, g.widths[t]) <= budget
            if fits and (best is None or keys[gi][t] > keys[best][depth[best] - 1]):
                best = gi
        if best is None:
            return walk.arch
        depth[best] -= 1
        walk.set(groups[best], groups[best].widths[depth[best]])


def _exchange(walk: _Walk, groups: list[_Group], depth: list[int], keys: list[torch.Tensor],
              budget: float) -> Arch:
    """When every step still removed is larger than the gap left under ``budget`` (a residual step of a
    ``--round-to`` is), restore one of them (the most important per cost first) and remove other groups'
    steps (the least important per cost first) until the model fits, then give back; the first exchange that
    lands within :data:`TOLERANCE` is kept, else the widths stay as they were."""
    floor = (1 - TOLERANCE) * budget
    for gi in sorted((g for g in range(len(groups)) if depth[g]), key=lambda g: -float(keys[g][depth[g] - 1])):
        before = walk.state(), list(depth)
        depth[gi] -= 1
        walk.set(groups[gi], groups[gi].widths[depth[gi]])
        while walk.total > budget:
            others = [g for g in range(len(groups)) if g != gi and depth[g] < len(groups[g].removed)]
            if not others:
                break
            g = min(others, key=lambda g: float(keys[g][depth[g]]))
            walk.set(groups[g], groups[g].widths[depth[g] + 1])
            depth[g] += 1
        if walk.total <= budget:
            _give_back(walk, groups, depth, keys, budget)
            if walk.total >= floor:
                return walk.arch
        walk.restore(before[0])
        depth[:] = before[1]
    return walk.arch


# ----------------------------------------------------------------------------------------------- uniform

# Relative pruning strength per component (embed is shared by every layer and costs most accuracy, so it is
# pruned less; the paper's presets remove 10-30% of it).
SEARCH_WEIGHTS = {"embed": 0.35, "qk": 1.0, "v": 1.0, "mlp": 1.0}


def _top_up(arch: Arch, shell: Arch, budget: float, cost: Cost, step: int) -> Arch:
    """Widen layers one ``step`` at a time (FFN first, then values, then query/key pairs, last block first)
    while the model stays within ``budget``: closes the gap that uniform rounding leaves."""
    limits = {"mlp": shell.mlp, "v": shell.head_dim, "qk": shell.head_dim}
    grew = True
    while grew:
        grew = False
        for comp in ("mlp", "v", "qk"):
            for j in reversed(range(len(arch.blocks))):
                b = arch.blocks[j]
                wider = min(getattr(b, comp) + step, limits[comp])
                if wider == getattr(b, comp):
                    continue
                candidate = replace(arch, blocks=[*arch.blocks[:j], replace(b, **{comp: wider}), *arch.blocks[j + 1:]])
                if total_cost(cost, candidate) <= budget:
                    arch, grew = candidate, True
    return arch


@register("uniform")
def uniform(shell: Arch, budget: float, cost: Cost, round_to: int, scores: Scores | None = None,
            probe: Probe | None = None, weights: dict | None = None, sublayers: bool = False) -> Arch:
    """See the module docstring (``weights``: the relative pruning strength per component; scores,
    ``probe`` and ``sublayers`` unused: no width goes to 0)."""
    weights = {**SEARCH_WEIGHTS, **(weights or {})}

    def at(s: float) -> Arch:
        def keep(orig: int, comp: str) -> int:
            return max(cost.smallest(comp), int(orig * (1 - s * weights[comp])))

        blocks = [replace(b, qk=keep(shell.head_dim, "qk"), v=keep(shell.head_dim, "v"), mlp=keep(shell.mlp, "mlp"))
                  for b in shell.blocks]
        return round_arch(replace(shell, embed=keep(shell.embed_orig, "embed"), blocks=blocks), round_to)

    def cost_at(s: float) -> float:
        return total_cost(cost, at(s))

    hi = 0.999 / max(weights.values())
    if cost_at(hi) > budget:
        raise SnpEdgeError(f"the target {_fmt(budget, cost)} is below the smallest model this search can reach "
                           f"({_fmt(cost_at(hi), cost)})")
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cost_at(mid) > budget else (lo, mid)
    return _top_up(at(hi), shell, budget, cost, round_to)
