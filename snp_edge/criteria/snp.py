"""The SNP criteria's maths (Shim et al., ECCV 2024): Q/K pairs scored by how well their rank-1 term of the
attention scores aligns with the dominant singular directions of S^h, value neurons by inter-head
similarity, and our attention-sensitivity variant. Tensors in, tensors out: no hooks, no models."""

from __future__ import annotations

from contextlib import contextmanager

import torch

EPS = 1e-12


@contextmanager
def _one_thread():
    """Run batched small LAPACK calls (64 x 64 eigh/SVD) on one thread: they gain nothing from more, and
    under CPU contention OpenMP's spinning made eigh 60x slower with two threads than with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _unit(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` scaled to unit norm along ``dim`` (zero vectors stay zero)."""
    return x / (x.norm(dim=dim, keepdim=True) + EPS)


def snp_qk_scores(q: torch.Tensor, k: torch.Tensor, gamma: int) -> torch.Tensor:
    """The paper's Q/K pair importance, per image: (B, H, N, d) x2 -> (B, H, d).

    omega_i = sum_{j<=gamma} |cos(s_j u_j v_j^T, q_i k_i^T)|. With the QR factorisations Q = Q_q R_q and
    K = Q_k R_k (``mode="r"``: only the d x d triangles are formed), S = Q_q (R_q R_k^T) Q_k^T, so the singular
    triplets of S are those of the d x d matrix M = R_q R_k^T (u = Q_q u', v = Q_k v'), and the cosine of two
    rank-1 matrices factorises: cos = (u_j.q_i)(v_j.k_i) / (|q_i||k_i|) with u_j.q_i = (u'^T R_q)_ji,
    v_j.k_i = (v'^T R_k)_ji and |q_i| = |R_q[:, i]|. The singular vectors are renormalised to unit length.
    No N x N matrix and no Gram matrix is formed: QR works on Q and K themselves, so the score stays accurate
    when a head's column norms spread over many decades (the Gram matrix squares that spread).
    """
    q, k = q.double(), k.double()
    g = min(gamma, q.shape[-2], q.shape[-1])
    with _one_thread():
        if q.shape[-2] <= q.shape[-1]:  # few tokens: S itself is the small matrix
            u, _, vh = torch.linalg.svd(q @ k.transpose(-2, -1))
            uq = _unit(u[..., :g], -2).transpose(-2, -1) @ q
            vk = _unit(vh[..., :g, :], -1) @ k
            norms = q.norm(dim=-2) * k.norm(dim=-2)
            return ((uq * vk).abs().sum(dim=-2) / (norms + EPS)).float()
        rq = torch.linalg.qr(q, mode="r").R  # (B, H, d, d)
        rk = torch.linalg.qr(k, mode="r").R
        u, _, vh = torch.linalg.svd(rq @ rk.transpose(-2, -1))
    uq = _unit(u[..., :g], -2).transpose(-2, -1) @ rq  # (B, H, g, d): u_j . q_i
    vk = _unit(vh[..., :g, :], -1) @ rk  # (B, H, g, d): v_j . k_i
    norms = rq.norm(dim=-2) * rk.norm(dim=-2)  # (B, H, d): |q_i| |k_i|
    return ((uq * vk).abs().sum(dim=-2) / (norms + EPS)).float()


def attn_qk_scores(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """``snp-attn`` Q/K pair importance, per image: (B, H, N, d) x2 -> (B, H, d).

    How much the attention map A = softmax(scale * Q K^T) moves when pair i (its rank-1 score term
    dS = scale * q_i k_i^T) is removed, to first order: dA = A * (dS - rowsum(A * dS)), so
    ||dA||_F^2 = scale^2 * sum_n q_ni^2 * sum_m A_nm^2 (k_mi - kbar_ni)^2 with kbar = A k.
    Score terms that are constant along a row (softmax ignores them) cost nothing.
    """
    q, k = q.double(), k.double()
    a = ((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
    a2 = a * a
    kbar = a @ k  # (B, H, N, d): attention-weighted mean of each key neuron, per query
    spread = a2 @ (k * k) - 2 * kbar * (a2 @ k) + kbar * kbar * a2.sum(-1, keepdim=True)
    return (scale * (q * q * spread.clamp_min(0)).sum(dim=2).sqrt()).float()


def snp_v_scores(w_v: torch.Tensor) -> torch.Tensor:
    """The paper's value importance: W_V rows (H*d_v, D) -> (H*d_v,), sum_l (1 - |cos(w_i, w_l)|)."""
    w = w_v.double()
    w = w / (w.norm(dim=1, keepdim=True) + EPS)
    return (1 - (w @ w.T).abs()).sum(dim=1).float()
