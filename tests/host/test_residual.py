"""The residual-width machinery: exact channel removal by masking, the kl criterion, re-scoring after the cut."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from snp_edge.arch import arch_of
from snp_edge.criteria import COMPONENTS, ScoreOptions, compute_scores
from snp_edge.criteria.residual import (
    ResidualMask,
    greedy_quadratic,
    kl_curvature,
    kl_order,
    logits,
    order_scores,
    rank_onto,
)
from snp_edge.errors import SnpEdgeError
from snp_edge.models import ModelHandle, create_model
from snp_edge.surgery import apply_widths

# 10 classes (the Fisher matrix sums over every class: exact), 2 blocks, width 48, 17 tokens
ARGS = {"img_size": 28, "patch_size": 7, "in_chans": 1, "embed_dim": 48, "depth": 2, "num_heads": 3,
        "num_classes": 10}


@pytest.fixture(scope="module")
def small():
    """A small DeiT with LayerNorm gains/biases and positions perturbed (random init leaves them 1/0)."""
    torch.manual_seed(0)
    model = create_model("deit_tiny_patch16_224", ARGS).eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1 + 0.5 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
        model.pos_embed.normal_(0, 0.5, generator=gen)
        model.cls_token.normal_(0, 0.5, generator=gen)
    return ModelHandle(model, "deit_tiny_patch16_224", dict(ARGS))


@pytest.fixture(scope="module")
def images():
    return torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def _embed_only(handle: ModelHandle, kept: torch.Tensor) -> ModelHandle:
    """``handle`` with only the residual channels ``kept`` (indices) left, physically."""
    base = arch_of(handle.model)
    scores = compute_scores(handle.model, None, ScoreOptions(dict.fromkeys(COMPONENTS, "l1")))
    order = torch.zeros(base.embed)
    order[kept] = 1
    return apply_widths(handle, replace(base, embed=len(kept)), replace(scores, embed=order))


@pytest.mark.parametrize("seed", [0, 1])
def test_mask_equals_physical_pruning(small, images, seed):
    """A 0/1 mask gives the logits of the model with the zero channels removed (LayerNorm statistics over the
    kept channels, gains and biases included)."""
    E = arch_of(small.model).embed
    kept = torch.randperm(E, generator=torch.Generator().manual_seed(seed))[:30].sort().values
    mask = torch.zeros(E)
    mask[kept] = 1
    with torch.no_grad(), ResidualMask(small.model, mask):
        masked = logits(small.model, images)
        per_image = ResidualMask(small.model, mask.expand(len(images), 1, E).clone())
    with torch.no_grad():
        pruned = _embed_only(small, kept).model.eval()(images)
        whole = small.model(images)
    torch.testing.assert_close(masked, pruned, atol=1e-5, rtol=1e-5)
    assert (masked - whole).abs().max() > 1e-2  # the cut does change the output: the check above is not vacuous
    with torch.no_grad(), per_image:
        torch.testing.assert_close(logits(small.model, images), pruned, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the hooks are gone after the block
        torch.testing.assert_close(small.model(images), whole, atol=0, rtol=0)


def test_mask_of_ones_is_the_model(small, images):
    E = arch_of(small.model).embed
    with torch.no_grad(), ResidualMask(small.model, torch.ones(E)):
        masked = small.model(images)
    torch.testing.assert_close(masked, small.model(images).detach(), atol=1e-5, rtol=1e-5)


def test_mask_bad_input(small):
    E = arch_of(small.model).embed
    with pytest.raises(SnpEdgeError, match=r"expected \(48,\)"):
        ResidualMask(small.model, torch.ones(E + 1))
    with pytest.raises(SnpEdgeError, match="expected"):
        ResidualMask(small.model, torch.ones(2, 3, E))
    with pytest.raises(SnpEdgeError, match="at least one channel"):
        ResidualMask(small.model, torch.zeros(E))
    with pytest.raises(SnpEdgeError, match="chunk must be >= 1"):
        kl_order(small.model, torch.zeros(2, 1, 28, 28), chunk=0)
    with pytest.raises(SnpEdgeError, match="floor in 1..48"):
        kl_order(small.model, torch.zeros(2, 1, 28, 28), floor=49)
    with pytest.raises(SnpEdgeError, match="calibration images"):
        compute_scores(small.model, None, ScoreOptions(embed_score="kl"), frozenset({"embed"}))


def test_kl_curvature_is_the_second_order_term(small, images):
    """At the unpruned model the KL divergence is at its minimum: the gradient is 0 and the Gauss-Newton
    matrix is the Hessian, so KL(1 - e d) = e^2/2 d^T F d + O(e^3)."""
    E = arch_of(small.model).embed
    ref = [logits(small.model, images).log_softmax(-1).detach()]
    g, fisher = kl_curvature(small.model, images, ref, torch.ones(E), batch_size=len(images))
    assert g.abs().max() < 1e-6
    torch.testing.assert_close(fisher, fisher.T)
    assert torch.linalg.eigvalsh(fisher).min() > -1e-8
    d = torch.rand(E, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    eps = 1e-2
    with torch.no_grad(), ResidualMask(small.model, (1 - eps * d).float()):
        kl = torch.nn.functional.kl_div(logits(small.model, images).log_softmax(-1), ref[0], log_target=True,
                                        reduction="batchmean")
    predicted = 0.5 * eps ** 2 * d @ fisher @ d
    assert abs(kl.item() - predicted.item()) < 0.1 * predicted.item()


def test_kl_gradient_away_from_the_minimum(small, images):
    """With channels removed the gradient is that of the KL divergence (central finite differences)."""
    E = arch_of(small.model).embed
    model = copy.deepcopy(small.model).double()
    ref = logits(model, images.double()).log_softmax(-1).detach()
    mask = torch.ones(E, dtype=torch.float64)
    mask[:12] = 0
    g, _ = kl_curvature(model, images.double(), list(ref.split(3)), mask, batch_size=3)

    def kl(m):
        with torch.no_grad(), ResidualMask(model, m):
            out = logits(model, images.double()).log_softmax(-1)
        return torch.nn.functional.kl_div(out, ref, log_target=True, reduction="batchmean").item()

    for c in (0, 20, 47):
        e = torch.zeros(E, dtype=torch.float64)
        e[c] = 1e-5
        fd = (kl(mask + e) - kl(mask - e)) / 2e-5
        assert g[c].item() == pytest.approx(fd, rel=1e-4, abs=1e-9)


def test_greedy_quadratic_takes_the_least_rise_each_step():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(9, 9, generator=gen, dtype=torch.float64)
    fisher, g = a @ a.T, torch.randn(9, generator=gen, dtype=torch.float64)

    def objective(s):
        x = torch.zeros(9, dtype=torch.float64)
        x[list(s)] = 1
        return (-g @ x + 0.5 * x @ fisher @ x).item()

    candidates = [0, 2, 3, 5, 6, 8]
    chosen = greedy_quadratic(g, fisher, candidates, 4)
    assert len(chosen) == 4 and set(chosen) <= set(candidates)
    for step, c in enumerate(chosen):
        before = chosen[:step]
        rest = [x for x in candidates if x not in before]
        assert objective([*before, c]) == pytest.approx(min(objective([*before, x]) for x in rest), abs=1e-12)
    assert greedy_quadratic(g, fisher, candidates, 10) != []  # k above the candidates: all of them, once
    assert sorted(greedy_quadratic(g, fisher, candidates, 10)) == candidates


@pytest.mark.slow
def test_kl_order_is_a_seeded_permutation(tiny_handle, tiny_inputs):
    """1000 classes: the Fisher matrix samples labels, from the seed; the same seed gives the same order."""
    a = kl_order(tiny_handle.model, tiny_inputs[:2], chunk=48, floor=96, seed=0)
    b = kl_order(tiny_handle.model, tiny_inputs[:2], chunk=48, floor=96, seed=0)
    assert a == b
    assert sorted(a) == list(range(192))


def test_kl_removes_channels_that_cost_less_than_random_ones(small, images):
    """The channels kl removes first move the output less (exact KL divergence, channels removed together)
    than any of 20 random sets of as many channels, and than the 8 of lowest l1 score."""
    E = arch_of(small.model).embed
    ref = logits(small.model, images).log_softmax(-1).detach()

    def cost(drop):
        mask = torch.ones(E)
        mask[list(drop)] = 0
        with torch.no_grad(), ResidualMask(small.model, mask):
            out = logits(small.model, images).log_softmax(-1)
        return torch.nn.functional.kl_div(out, ref, log_target=True, reduction="batchmean").item()

    first = kl_order(small.model, images, chunk=4, floor=40)[:8]
    gen = torch.Generator().manual_seed(0)
    random_costs = [cost(torch.randperm(E, generator=gen)[:8].tolist()) for _ in range(20)]
    l1 = compute_scores(small.model, None, ScoreOptions(dict.fromkeys(COMPONENTS, "l1")), frozenset({"embed"}))
    assert cost(first) < min(random_costs)
    assert cost(first) < cost(l1.embed.argsort()[:8].tolist())


def test_rank_onto_and_order_scores():
    order = torch.tensor([0.3, 0.1, 0.9, 0.5])
    values = torch.tensor([10.0, 40.0, 20.0, 30.0])
    torch.testing.assert_close(rank_onto(order, values), torch.tensor([20.0, 10.0, 40.0, 30.0]), atol=0, rtol=0)
    torch.testing.assert_close(order_scores([2, 0, 3, 1], 4), torch.tensor([1.0, 3.0, 0.0, 2.0]), atol=0, rtol=0)


def test_kl_embed_scores_keep_l1_values(small, images):
    """--embed-score kl orders the channels; the values stay l1's (so the allocation weighs the residual
    width as before)."""
    kl = compute_scores(small.model, images, ScoreOptions(embed_score="kl"), frozenset({"embed"})).embed
    l1 = compute_scores(small.model, images, ScoreOptions(embed_score="l1"), frozenset({"embed"})).embed
    torch.testing.assert_close(kl.sort().values, l1.sort().values, atol=0, rtol=0)
    assert not torch.equal(kl, l1)


def test_rescore_scores_the_narrower_model(small, images):
    """After the residual cut the Q/K, value and FFN scores are those of the model with only the residual
    width removed; heads and the residual scores are untouched; nothing changes without a cut."""
    from snp_edge.api import prune, rescored

    opts = ScoreOptions()
    wanted = frozenset({"qk", "v", "mlp", "embed"})
    scores = compute_scores(small.model, images, opts, wanted)
    base = arch_of(small.model)
    assert rescored(small, scores, base, images, opts, wanted) is scores
    arch = replace(base, embed=30)
    again = rescored(small, scores, arch, images, opts, wanted)
    kept = torch.sort(scores.embed, descending=True, stable=True).indices[:30].sort().values
    narrow = compute_scores(_embed_only(small, kept).model.eval(), images, opts, frozenset({"qk", "v", "mlp"}))
    for comp in ("qk", "v", "mlp"):
        for new, ref in zip(getattr(again, comp), getattr(narrow, comp), strict=True):
            torch.testing.assert_close(new, ref, atol=0, rtol=0)
    assert any(not torch.equal(a, b) for a, b in zip(again.mlp, scores.mlp, strict=True))
    assert torch.equal(again.embed, scores.embed) and again.heads is scores.heads
    cfg = {"embed": 30, "mlp": 100, "qk": 8, "v": 8}
    on = prune(small, config=cfg, calib=None, rescore=True)
    off = prune(small, config=cfg, calib=None)
    assert on.recipe["rescore"] is True and off.recipe["rescore"] is False
    assert on.handle.arch == off.handle.arch
