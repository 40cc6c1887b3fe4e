"""Width allocation: score-driven (global ranking of normalised importance per unit of cost) and uniform."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch

from snp_edge import prune
from snp_edge.allocation import ALLOCATORS, PROBE_KEPT, MacCost, allocate, ladder, structure, total_cost
from snp_edge.criteria import Scores
from snp_edge.errors import SnpEdgeError
from snp_edge.macs import predict_macs
from tests.host.test_targets import _base


def _scores(base, seed: int = 0) -> Scores:
    """Synthetic scores of the right shapes (log-normal: heavy-tailed like real activations)."""
    g = torch.Generator().manual_seed(seed)
    H, d, M = base.num_heads, base.head_dim, base.mlp

    def ln(*shape):
        return torch.randn(*shape, generator=g).exp()

    return Scores(qk=[ln(H, d) for _ in range(base.depth)], v=[ln(H, d) for _ in range(base.depth)],
                  mlp=[ln(M) for _ in range(base.depth)], heads=[ln(H) for _ in range(base.depth)],
                  embed=ln(base.embed_orig), blocks=ln(base.depth))


def test_cli_names_match_the_registry():
    from snp_edge.cli.args import ALLOCATIONS

    assert set(ALLOCATIONS) == set(ALLOCATORS)
    from snp_edge.api import DEFAULT_ALLOCATION
    from snp_edge.cli.args import DEFAULT_ALLOCATION as CLI_DEFAULT

    assert CLI_DEFAULT == DEFAULT_ALLOCATION  # the CLI's default is the API's (the CLI cannot import torch)


def test_mac_cost_is_predict_macs():
    base, consts = _base("deit_small_patch16_224")
    arch = allocate("uniform", base, 1.3e9, MacCost(**consts))
    assert total_cost(MacCost(**consts), arch) == predict_macs(arch, **consts)
    assert total_cost(MacCost(**consts), base) == predict_macs(base, **consts)


def test_ladder():
    assert ladder(64, 1)[:3] == [64, 63, 62] and ladder(64, 1)[-1] == 1
    assert ladder(64, 8) == [64, 56, 48, 40, 32, 24, 16, 8]
    assert ladder(345, 8)[:3] == [345, 344, 336] and ladder(345, 8)[-1] == 8


@pytest.mark.parametrize("allocation", sorted(ALLOCATORS))
@pytest.mark.parametrize("name,target,round_to", [("deit_small_patch16_224", 2.0, 1),
                                                  ("deit_small_patch16_224", 1.3, 8),
                                                  ("deit_base_patch16_224", 9.0, 16)])
def test_budget_within_two_percent(allocation, name, target, round_to):
    base, consts = _base(name)
    arch = allocate(allocation, base, target * 1e9, MacCost(**consts), round_to, _scores(base))
    got = predict_macs(arch, **consts) / 1e9
    assert 0.98 * target <= got <= target
    pruned = [w for b in arch.blocks for w, o in ((b.qk, base.head_dim), (b.v, base.head_dim), (b.mlp, base.mlp))
              if w != o] + ([arch.embed] if arch.embed != base.embed_orig else [])
    assert pruned and all(w % round_to == 0 for w in pruned)


@pytest.mark.parametrize("allocation", sorted(ALLOCATORS))
def test_heads_and_drop_blocks_land_within_two_percent_deit_s(allocation):
    """Issue 16's 'done when': --target-gmacs with --drop-blocks and --heads on DeiT-S, within 2% under."""
    base, consts = _base("deit_small_patch16_224")
    scores = _scores(base)
    for target, drop, heads, round_to in ((2.0, 2, None, 1), (1.3, 2, 4, 8), (1.0, 3, 3, 1)):
        shell = structure(base, scores, drop, heads)
        arch = allocate(allocation, shell, target * 1e9, MacCost(**consts), round_to, scores)
        assert len(arch.blocks) == 12 - drop and all(b.heads == (heads or 6) for b in arch.blocks)
        dropped = set(range(12)) - set(arch.blocks_kept)
        assert dropped == set(torch.topk(-scores.blocks, drop).indices.tolist())  # the least important blocks
        assert 0.98 * target <= predict_macs(arch, **consts) / 1e9 <= target


def test_score_allocation_follows_the_scores():
    """A block whose FFN scores are concentrated on a few neurons loses more of its FFN than one whose scores
    are flat; with a global threshold every removed neuron ranks below every kept one in its normalised score."""
    base, consts = _base("deit_small_patch16_224")
    scores = _scores(base)
    scores.mlp[0] = torch.cat([torch.full((100,), 100.0), torch.full((base.mlp - 100,), 0.01)])
    scores.mlp[1] = torch.ones(base.mlp) + 0.01 * torch.rand(base.mlp, generator=torch.Generator().manual_seed(1))
    arch = allocate("score", base, 2.0e9, MacCost(**consts), 1, scores)
    assert arch.blocks[0].mlp < 200 < base.mlp * 0.9 < arch.blocks[1].mlp
    kept, removed = [], []
    for b in arch.blocks:
        s = scores.mlp[b.index] / scores.mlp[b.index].mean()
        order = s.sort(descending=True).values
        kept.append(order[:b.mlp].min())
        removed.append(order[b.mlp:].max() if b.mlp < base.mlp else torch.tensor(0.0))
    s = scores.embed / scores.embed.mean()
    order = s.sort(descending=True).values
    kept.append(order[:arch.embed].min())
    removed.append(order[arch.embed:].max() if arch.embed < base.embed_orig else torch.tensor(0.0))
    # the give-back step may restore a step or two below the threshold: a tiny overlap at most
    assert max(removed) <= min(kept) * 1.05


@dataclass(frozen=True)
class _FreeAttention(MacCost):
    """A toy cost in which query/key and value neurons cost nothing: they must then stay."""

    def block(self, embed, block):
        return super().block(embed, replace(block, qk=0, v=0))


@pytest.mark.slow
def test_cost_is_pluggable():
    base, consts = _base("deit_small_patch16_224")
    macs = MacCost(**consts)
    cost = _FreeAttention(**consts)
    budget = 0.5 * total_cost(cost, base)
    arch = allocate("score", base, budget, cost, 1, _scores(base))
    assert all(b.qk == base.head_dim and b.v == base.head_dim for b in arch.blocks)
    assert 0.98 * budget <= total_cost(cost, arch) <= budget
    assert any(b.qk < base.head_dim for b in allocate("score", base, 0.5 * total_cost(macs, base), macs, 1,
                                                      _scores(base)).blocks)


def test_bad_allocations():
    base, consts = _base("deit_tiny_patch16_224")
    with pytest.raises(SnpEdgeError, match="unknown allocation"):
        allocate("greedy", base, 1e9, MacCost(**consts))
    for name in ALLOCATORS:
        with pytest.raises(SnpEdgeError, match="below the smallest"):
            allocate(name, base, 1e6, MacCost(**consts), 1, _scores(base))
    with pytest.raises(SnpEdgeError, match="needs the criterion's scores"):
        allocate("score", base, 0.6e9, MacCost(**consts))


@pytest.mark.slow
@pytest.mark.parametrize("allocation", sorted(ALLOCATORS))
def test_drop_blocks_then_widths_land_under_target_deit_s(allocation):
    """Reproduction (issue 16): `--target-gmacs 2.0 --drop-blocks 2` on DeiT-S landed at 1.674 GMACs because
    the blocks were dropped after the width search. Blocks go first now; the widths are searched without them."""
    result = prune("deit_small_patch16_224", weights="random", target_gmacs=2.0, drop_blocks=2, criteria="l1",
                   allocation=allocation, group_weight="macs")  # the landing, not the worth (loss probes: minutes)
    s = result.summary
    assert len(s["widths"]["blocks"]) == 10
    assert 0.98 * 2.0 <= s["gmacs_after"] <= 2.0
    assert result.recipe["target"]["allocation"] == allocation


# ------------------------------------------------------------------------------------ loss group weights


def test_group_weight_names_match_the_cli():
    from snp_edge.allocation import GROUP_WEIGHTS
    from snp_edge.api import DEFAULT_GROUP_WEIGHT
    from snp_edge.cli.args import DEFAULT_GROUP_WEIGHT as CLI_DEFAULT
    from snp_edge.cli.args import GROUP_WEIGHTS as CLI_NAMES

    assert CLI_NAMES == ("auto", *GROUP_WEIGHTS) and CLI_DEFAULT == DEFAULT_GROUP_WEIGHT


def _cut_fraction(arch, base) -> dict[str, float]:
    """Fraction of each component's width removed, summed over blocks."""
    out = {"embed": 1 - arch.embed / base.embed_orig}
    for c, full in (("qk", base.head_dim), ("v", base.head_dim), ("mlp", base.mlp)):
        out[c] = sum(1 - getattr(b, c) / full for b in arch.blocks)
    return out


def test_loss_weights_follow_the_probe():
    """With measured group weights the allocation spares what the probe says is costly to cut, whatever the
    scores and the MACs say: a probe that makes any query/key cut expensive keeps the pairs (almost) whole,
    one that makes the residual width expensive keeps it (almost) whole; the budget still lands within 2%.
    (Otherwise the residual width costs 10 times a block's width, as measured on the MNIST ViT.)"""
    base, consts = _base("deit_small_patch16_224")
    macs, scores = MacCost(**consts), _scores(base)
    calls = []

    def probe_for(costly: str):
        def probe(arch):
            calls.append(arch)
            cut = _cut_fraction(arch, base)
            return sum((100.0 if c == costly else 10.0 if c == "embed" else 1.0) * f for c, f in cut.items())
        return probe

    budget = 0.5 * total_cost(macs, base)
    plain = allocate("score", base, budget, macs, 8, scores)
    assert any(b.qk < base.head_dim for b in plain.blocks) and plain.embed < base.embed_orig
    for costly in ("qk", "embed"):
        calls.clear()
        arch = allocate("score", base, budget, macs, 8, scores, probe_for(costly))
        assert 0.98 * budget <= total_cost(macs, arch) <= budget
        cut, was = _cut_fraction(arch, base), _cut_fraction(plain, base)
        assert cut[costly] < was[costly] / 8  # one step of the residual width at most: 8/384 against 35%
        # the shell, then every group probed alone len(PROBE_KEPT) times: 1 residual + 3 x 12 block groups;
        # when the residual width is cut, the block groups again on top of that cut (issue 21)
        first = 1 + 37 * len(PROBE_KEPT)
        assert len(calls) == first + (1 + 36 * len(PROBE_KEPT) if arch.embed < base.embed_orig else 0)
        assert calls[0] == base and all(sum(v > 0 for v in _cut_fraction(a, base).values()) == 1
                                        for a in calls[1:first])
        assert all(a.embed < base.embed_orig and sum(v > 0 for v in _cut_fraction(a, base).values()) <= 2
                   for a in calls[first:])


def test_measured_loss_curve_meets_the_probes_and_never_falls():
    """The loss curve of a group passes through its probes exactly (at the probed ladder widths), is
    non-decreasing although the probe is not, and a probe that is not finite is refused with the group named."""
    from snp_edge.allocation import PROBE_KEPT, _groups, measure_loss

    base, _ = _base("deit_tiny_patch16_224")
    shell = replace(base, blocks=base.blocks[:1])
    scores = _scores(base)
    measured = {}

    def probe(arch):  # falls between the half and the quarter probe of every group: noise a curve must absorb
        b = arch.blocks[0]
        width, full = next(((w, o) for w, o in ((arch.embed, base.embed_orig), (b.qk, base.head_dim),
                                                 (b.v, base.head_dim), (b.mlp, base.mlp)) if w < o), (1, 1))
        loss = {1.0: 0.0, 0.875: 0.5, 0.75: 1.0, 0.5: 2.0, 0.25: 1.5}.get(width / full, 3.0)
        measured[(arch.embed, b.qk, b.v, b.mlp)] = loss
        return loss + shift[0]

    shift = [0.0]
    for shift[0] in (0.0, 0.7):  # the shell's own loss (a cut made before) is not the groups'
        measured.clear()
        groups = _groups(shell, scores, 1)
        measure_loss(groups, shell, probe)
        for g in groups:
            curve = torch.cat([torch.zeros(1, dtype=torch.float64), g.loss.cumsum(0)])
            assert (g.loss >= 0).all()
            for kept, want in ((0.875, 0.5), (0.75, 1.0), (0.5, 2.0), (0.25, 2.0)):  # 1.5 measured, held at 2.0
                assert curve[g.widths.index(int(g.widths[0] * kept))].item() == pytest.approx(want, abs=1e-12)
            assert curve[-1].item() == pytest.approx(3.0, abs=1e-12)
        assert len(measured) == 1 + 4 * len(PROBE_KEPT)
    with pytest.raises(SnpEdgeError, match="loss probe of embed .* not finite"):
        measure_loss(_groups(shell, scores, 1), shell, lambda arch: float("nan"))


@pytest.mark.parametrize(("error", "sublayers"), [(0.01, False), (100.0, False), (0.01, True)])
def test_deferred_losses_are_measured_only_where_the_widths_reach_them(error, sublayers):
    """A probe may answer some cuts with an estimate (``deferred``) and measure them only on request
    (``exact``), as the ``fisher`` probe does for a group's smallest width: the allocator asks for those of the
    groups its widths reach, allocates again until none is left that it reaches, and lands on the widths the
    exact losses give, whether the estimates were too low or too high (with sublayers: the removal rung only
    once the narrowest width is reached); the others stay unmeasured."""
    base, consts = _base("deit_small_patch16_224")
    macs, scores = MacCost(**consts), _scores(base)
    weight = {"embed": 10.0, "qk": 3.0, "v": 1.0, "mlp": 2.0}

    def truth(arch):
        cut = _cut_fraction(arch, base)
        return sum(weight[c] * (f + 4 * f ** 3) for c, f in cut.items())

    class Lazy:
        def __init__(self):
            self.exact_calls, self.estimated, self.base = [], 0, None

        def rebase(self, shell):
            self.base = shell

        def deferred(self, arch):  # a group cut from the base to less than 1/8 of its width (its smallest rung)
            if arch.embed != self.base.embed:
                return arch.embed < self.base.embed / 8
            return any(getattr(a, c) < getattr(b, c) / 8 for a, b in zip(arch.blocks, self.base.blocks, strict=True)
                       for c in ("qk", "v", "mlp"))

        def __call__(self, arch):
            self.estimated += self.deferred(arch)
            return truth(arch) * (error if self.deferred(arch) else 1.0)

        def exact(self, arch):
            self.exact_calls.append(arch)
            return truth(arch)

    budget = 0.15 * total_cost(macs, base)  # deep: groups reach their smallest rungs
    want = allocate("score", base, budget, macs, 8, scores, truth, sublayers)
    lazy = Lazy()
    got = allocate("score", base, budget, macs, 8, scores, lazy, sublayers)
    assert got == want
    assert 0 < len(lazy.exact_calls) < lazy.estimated  # some groups reach their smallest rung, not all of them


def test_a_coarse_last_step_is_exchanged_for_finer_ones():
    """When only residual steps (87 MMACs each at --round-to 8 on DeiT-S) are left to give back and the gap
    under the budget is smaller than one of them, one is restored and finer steps of other groups go instead:
    the budget is met within 2% (it stopped 3.8% under before, an error)."""
    base, consts = _base("deit_small_patch16_224")
    macs, scores = MacCost(**consts), _scores(base)

    def probe(arch):  # query/key pairs and values costly, the residual width cheap
        cut = _cut_fraction(arch, base)
        return 100 * (cut["qk"] + cut["v"]) + cut["mlp"] + cut["embed"]

    budget = 0.5 * total_cost(macs, base)
    arch = allocate("score", base, budget, macs, 8, scores, probe)
    assert 0.98 * budget <= total_cost(macs, arch) <= budget
    assert arch.embed < base.embed_orig and all(b.qk == b.v == base.head_dim for b in arch.blocks)
