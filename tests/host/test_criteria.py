"""The SNP scores against their definitions, computed the slow way with explicit N x N matrices."""

from __future__ import annotations

import pytest
import torch

from snp_edge.arch import arch_of
from snp_edge.criteria import COMPONENTS, CRITERIA, ScoreOptions, compute_scores, snp_qk_scores, snp_v_scores
from snp_edge.errors import SnpEdgeError


def _brute_qk(q: torch.Tensor, k: torch.Tensor, gamma: int) -> torch.Tensor:
    """omega_i = sum_{j<gamma} |cos(s_j u_j v_j^T, q_i k_i^T)| for one head: q, k (N, d) -> (d,)."""
    q, k = q.double(), k.double()
    u, s, vh = torch.linalg.svd(q @ k.T)
    out = torch.zeros(q.shape[1], dtype=torch.float64)
    for i in range(q.shape[1]):
        term = torch.outer(q[:, i], k[:, i]).flatten()
        for j in range(min(gamma, len(s))):
            comp = (s[j] * torch.outer(u[:, j], vh[j])).flatten()
            out[i] += (comp @ term).abs() / (comp.norm() * term.norm())
    return out.float()


@pytest.mark.parametrize("tokens,width,gamma", [(20, 8, 3), (5, 8, 8), (17, 6, 2)])
def test_snp_qk_matches_definition(tokens, width, gamma):
    gen = torch.Generator().manual_seed(tokens)
    q = torch.randn(2, 3, tokens, width, generator=gen)
    k = torch.randn(2, 3, tokens, width, generator=gen)
    fast = snp_qk_scores(q, k, gamma)
    assert fast.shape == (2, 3, width)
    for b in range(2):
        for h in range(3):
            torch.testing.assert_close(fast[b, h], _brute_qk(q[b, h], k[b, h], gamma), atol=1e-5, rtol=1e-4)


def test_snp_v_matches_definition():
    w = torch.randn(10, 64, generator=torch.Generator().manual_seed(0))
    w[3] = 2 * w[5]  # a redundant pair: both must score lower than an average filter
    brute = torch.tensor([sum(1 - abs(torch.nn.functional.cosine_similarity(w[i], w[m], dim=0).item())
                              for m in range(10)) for i in range(10)])
    fast = snp_v_scores(w)
    torch.testing.assert_close(fast, brute, atol=1e-5, rtol=1e-5)
    assert fast[3] < fast.median() and fast[5] < fast.median()


@pytest.mark.parametrize("criterion", CRITERIA)
def test_scores_have_one_value_per_unit(tiny_handle, tiny_inputs, criterion):
    scores = compute_scores(tiny_handle.model, tiny_inputs, ScoreOptions(dict.fromkeys(COMPONENTS, criterion)))
    arch = arch_of(tiny_handle.model)
    assert scores.embed.shape == (arch.embed,)
    assert scores.blocks.shape == (arch.depth,)
    for b in range(arch.depth):
        assert scores.qk[b].shape == (arch.num_heads, arch.head_dim)
        assert scores.v[b].shape == (arch.num_heads, arch.head_dim)
        assert scores.mlp[b].shape == (arch.mlp,)
        assert scores.heads[b].shape == (arch.num_heads,)
    assert all(torch.isfinite(s).all() for s in [scores.embed, scores.blocks, *scores.qk, *scores.v, *scores.mlp])


@pytest.mark.slow
def test_criteria_rank_differently(tiny_handle, tiny_inputs):
    ranks = {}
    for criterion in CRITERIA:
        s = compute_scores(tiny_handle.model, tiny_inputs, ScoreOptions(dict.fromkeys(COMPONENTS, criterion)))
        ranks[criterion] = s.qk[0].argsort(dim=-1)
    assert not torch.equal(ranks["snp"], ranks["l1"])
    assert not torch.equal(ranks["snp"], ranks["random"])
    assert not torch.equal(ranks["l1"], ranks["random"])


def test_bad_options():
    with pytest.raises(SnpEdgeError, match="unknown criterion"):
        ScoreOptions({"qk": "magic"})
    with pytest.raises(SnpEdgeError, match="snp-gamma"):
        ScoreOptions(gamma=0)


@pytest.mark.parametrize("spread", [1e3, 1e5, 1e6])
def test_snp_qk_accurate_when_column_norms_spread(spread):
    """Reproduction (issue 16): the Gram/Cholesky + eigh path lost accuracy when a head's column norms spread
    over 1e5 (squaring the condition number); QR + a d x d SVD keeps the score at the definition's value."""
    gen = torch.Generator().manual_seed(0)
    tokens, width = 50, 16
    scale = torch.logspace(0, torch.log10(torch.tensor(spread)).item(), width, dtype=torch.float64)
    q = torch.randn(1, 1, tokens, width, generator=gen, dtype=torch.float64) * scale
    k = torch.randn(1, 1, tokens, width, generator=gen, dtype=torch.float64) * scale.flip(0)
    fast = snp_qk_scores(q, k, 4)[0, 0]
    torch.testing.assert_close(fast, _brute_qk(q[0, 0], k[0, 0], 4), atol=1e-6, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("embed_score", ["ln", "fisher", "ablation", "act"])
def test_data_driven_residual_scores_rank_a_dead_channel_last(tiny_handle, tiny_inputs, embed_score):
    """A residual channel that carries nothing (zero embedding, zero LayerNorm gains and biases, zero
    writes) scores lowest under every data-driven residual criterion."""
    import copy

    model = copy.deepcopy(tiny_handle.model).eval()
    dead = 5
    with torch.no_grad():
        model.patch_embed.proj.weight[dead] = 0
        model.patch_embed.proj.bias[dead] = 0
        model.cls_token[..., dead] = 0
        model.pos_embed[..., dead] = 0
        for blk in model.blocks:
            for norm in (blk.norm1, blk.norm2):
                norm.weight[dead] = 0
                norm.bias[dead] = 0
            blk.attn.proj.weight[dead] = 0
            blk.attn.proj.bias[dead] = 0
            blk.mlp.fc2.weight[dead] = 0
            blk.mlp.fc2.bias[dead] = 0
        model.norm.weight[dead] = 0
        model.norm.bias[dead] = 0
    opts = ScoreOptions(dict.fromkeys(COMPONENTS, "snp"), embed_score=embed_score)
    embed = compute_scores(model, tiny_inputs, opts, frozenset({"embed"})).embed
    assert embed.shape == (192,) and torch.isfinite(embed).all()
    assert embed.argmin().item() == dead
