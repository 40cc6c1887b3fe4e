"""Neuron, head and block importance scores: the SNP criteria and the l1 / l2 / random baselines.

Every score is "higher = more important = kept". Components and what each criterion means:

========  ============================================  ==========================  ======================
component ``snp`` (the paper's figure)                  ``snp-data`` (ours)         ``l1`` / ``l2``
========  ============================================  ==========================  ======================
qk        sum over the top-gamma singular triplets of   E |q_i| |k_i|: Frobenius    p-norm of the pair's
          S^h = Q^h K^h^T of |cos(s_j u_j v_j^T,         norm of the rank-1 term of  two weight rows
          q_i k_i^T)|, averaged over images              S that pair i contributes
v         sum over all value filters of the block of     E |A_h v_i| * |W_proj[:,i]| p-norm of W_V row
          1 - |cos(W_V row i, W_V row l)| (weights only) (what the output loses)
mlp       E |act_i| * |W_fc2[:,i]|  (``--ffn-score``)    same                        p-norm of fc1 row
embed     total-sum-scaled per-layer weight scores,      same                        same, with p-norm
          averaged over the coupled layers (``--embed-score``)
heads     E |A_h V_h W_proj^h|: the head's share of      same                        p-norm of the head's
          the attention output                                                       qkv rows + proj cols
blocks    E |f(x)| / |x|: relative residual update       same                        mean |w| of the block
========  ============================================  ==========================  ======================

``random`` gives seeded uniform scores everywhere. The paper does not publish gamma, the FFN and
residual base scores, or how heads are chosen: those choices are ours, documented here, and switchable.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from .attention import PrunedAttention
from .errors import SnpEdgeError

CRITERIA = ("snp", "snp-data", "snp-attn", "l1", "l2", "random")
COMPONENTS = ("qk", "v", "mlp", "embed", "heads", "blocks")
# The default: the paper's criteria, except for value neurons, where the paper's weight-similarity rule
# measured far worse than every baseline and the data-driven output score best (docs/accuracy.md).
DEFAULT_CRITERIA = {**dict.fromkeys(COMPONENTS, "snp"), "v": "snp-data"}
FFN_SCORES = ("act", "l1", "l2")
EMBED_SCORES = ("l1", "l2", "act")
EPS = 1e-12


@dataclass
class ScoreOptions:
    """Which criterion scores each component, and the free parameters the paper leaves open."""

    criteria: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CRITERIA))
    gamma: int = 8  # singular triplets of S^h used by the snp Q/K score
    ffn_score: str = "act"  # base score of FFN neurons under snp / snp-data
    embed_score: str = "l1"  # per-layer base score of residual channels under snp / snp-data
    seed: int = 0
    batch_size: int = 16

    def __post_init__(self) -> None:
        for comp, crit in self.criteria.items():
            if comp not in COMPONENTS:
                raise SnpEdgeError(f"unknown component {comp!r}; use one of {', '.join(COMPONENTS)}")
            if crit not in CRITERIA:
                raise SnpEdgeError(f"unknown criterion {crit!r} for {comp}; use one of {', '.join(CRITERIA)}")
        if self.ffn_score not in FFN_SCORES:
            raise SnpEdgeError(f"unknown --ffn-score {self.ffn_score!r}; use one of {', '.join(FFN_SCORES)}")
        if self.embed_score not in EMBED_SCORES:
            raise SnpEdgeError(f"unknown --embed-score {self.embed_score!r}; use one of {', '.join(EMBED_SCORES)}")
        if self.gamma < 1:
            raise SnpEdgeError(f"--snp-gamma must be >= 1, got {self.gamma}")

    def data_driven(self, comp: str) -> bool:
        crit = self.criteria[comp]
        if comp == "mlp":
            return crit in ("snp", "snp-data", "snp-attn") and self.ffn_score == "act"
        if comp == "embed":
            return crit in ("snp", "snp-data", "snp-attn") and self.embed_score == "act"
        if comp == "v":
            return crit in ("snp-data", "snp-attn")
        return crit in ("snp", "snp-data", "snp-attn")


@dataclass
class Scores:
    """Importance per component. Shapes: qk[b] (H, d_qk), v[b] (H, d_v), mlp[b] (M,), heads[b] (H,),
    embed (E,), blocks (depth,); b indexes model.blocks."""

    qk: list[torch.Tensor]
    v: list[torch.Tensor]
    mlp: list[torch.Tensor]
    heads: list[torch.Tensor]
    embed: torch.Tensor
    blocks: torch.Tensor


def _split_qkv(attn: nn.Module, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv Linear output (B, N, ...) -> q, k (B, H, N, d_qk) and v (B, H, N, d_v), unscaled."""
    B, N, _ = out.shape
    if isinstance(attn, PrunedAttention):
        H, dqk, dv = attn.num_heads, attn.qk_dim, attn.v_dim
    else:
        H, dqk, dv = attn.num_heads, attn.head_dim, attn.head_dim
    q, k, v = out.split([H * dqk, H * dqk, H * dv], dim=-1)
    return (q.reshape(B, N, H, dqk).transpose(1, 2), k.reshape(B, N, H, dqk).transpose(1, 2),
            v.reshape(B, N, H, dv).transpose(1, 2))


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


def _gram_factor(x: torch.Tensor) -> torch.Tensor:
    """Upper-triangular R with R^T R = X^T X (the R of a QR of X), via Cholesky of the d x d Gram matrix.

    x: (..., N, d) float64 -> (..., d, d). A relative jitter of 1e-10 keeps rank-deficient X (N < d, dead
    neurons) factorisable; it only adds singular values far below those the score uses.
    """
    gram = x.transpose(-2, -1) @ x
    jitter = 1e-10 * gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-30)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype)
    return torch.linalg.cholesky(gram + jitter[..., None, None] * eye).transpose(-2, -1)


def snp_qk_scores(q: torch.Tensor, k: torch.Tensor, gamma: int) -> torch.Tensor:
    """The paper's Q/K pair importance, per image: (B, H, N, d) x2 -> (B, H, d).

    omega_i = sum_{j<=gamma} |cos(s_j u_j v_j^T, q_i k_i^T)|. With Q = Q_q R_q and K = Q_k R_k,
    S = Q_q (R_q R_k^T) Q_k^T, so the singular triplets come from the d x d matrix M = R_q R_k^T
    (top eigenvectors of M M^T give u', s; v' = M^T u' / s), and the cosine of two rank-1 matrices
    factorises: cos = (u_j.q_i)(v_j.k_i) / (|q_i||k_i|) with u_j.q_i = (u'^T R_q)_ji, v_j.k_i = (v'^T R_k)_ji.
    The R factors come from Cholesky of the Gram matrices. No N x N matrix is formed.
    """
    q, k = q.double(), k.double()
    g = min(gamma, q.shape[-2], q.shape[-1])
    if q.shape[-2] <= q.shape[-1]:  # few tokens: S itself is the small matrix
        with _one_thread():
            u, _, vh = torch.linalg.svd(q @ k.transpose(-2, -1))
        uq = u[..., :g].transpose(-2, -1) @ q
        vk = vh[..., :g, :] @ k
        norms = q.norm(dim=-2) * k.norm(dim=-2)
        return ((uq * vk).abs().sum(dim=-2) / (norms + EPS)).float()
    rq, rk = _gram_factor(q), _gram_factor(k)  # (B, H, d, d)
    m = rq @ rk.transpose(-2, -1)
    with _one_thread():
        eigval, eigvec = torch.linalg.eigh(m @ m.transpose(-2, -1))  # ascending
    u = eigvec[..., -g:]  # (B, H, d, g)
    sigma = eigval[..., -g:].clamp_min(0).sqrt()
    v = (m.transpose(-2, -1) @ u) / (sigma[..., None, :] + EPS)
    uq = u.transpose(-2, -1) @ rq  # (B, H, g, d): u_j . q_i
    vk = v.transpose(-2, -1) @ rk  # (B, H, g, d): v_j . k_i
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


class _Collector:
    """Forward hooks that accumulate the calibration statistics the data-driven scores need."""

    def __init__(self, model: nn.Module, opts: ScoreOptions, wanted: frozenset[str]) -> None:
        self.model, self.opts = model, opts
        self.stats: dict[str, dict[int, torch.Tensor]] = {}
        self.images = 0
        self.handles = []
        self.need = need = lambda comp: comp in wanted and opts.data_driven(comp)  # noqa: E731
        for i, blk in enumerate(model.blocks):
            if need("qk") or need("v") or need("heads"):
                self.handles.append(blk.attn.qkv.register_forward_hook(self._qkv_hook(i)))
            if need("mlp"):
                self.handles.append(blk.mlp.act.register_forward_hook(self._act_hook(i)))
            if need("blocks") or need("embed"):
                self.handles.append(blk.register_forward_hook(self._block_hook(i)))

    def _add(self, key: str, i: int, value: torch.Tensor) -> None:
        bucket = self.stats.setdefault(key, {})
        bucket[i] = bucket[i] + value if i in bucket else value

    def _qkv_hook(self, i: int):
        attn = self.model.blocks[i].attn
        crit, need = self.opts.criteria, self.need

        def hook(_module, _inputs, out):
            q, k, v = _split_qkv(attn, out)
            if need("qk") and crit["qk"] == "snp":
                self._add("qk", i, snp_qk_scores(q, k, self.opts.gamma).sum(0))
            elif need("qk") and crit["qk"] == "snp-attn":
                self._add("qk", i, attn_qk_scores(q, k, attn.scale).sum(0))
            elif need("qk"):
                self._add("qk", i, (q.norm(dim=2) * k.norm(dim=2)).sum(0))
            if need("v") or need("heads"):
                probs = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1)
                o = probs @ v  # (B, H, N, d_v)
                w_proj = attn.proj.weight  # (D, H*d_v)
                H, dv = o.shape[1], o.shape[-1]
                if need("v"):
                    col = w_proj.norm(dim=0).reshape(H, dv)
                    self._add("v", i, o.norm(dim=2).sum(0) * col)
                if need("heads"):
                    w = w_proj.reshape(w_proj.shape[0], H, dv).permute(1, 2, 0)  # (H, d_v, D)
                    contrib = torch.einsum("bhnd,hde->bhne", o, w)
                    self._add("heads", i, contrib.flatten(2).norm(dim=-1).sum(0))

        return hook

    def _act_hook(self, i: int):
        def hook(_module, _inputs, out):
            self._add("mlp", i, out.norm(dim=1).sum(0))  # (M,): |act_i| over tokens, summed over images

        return hook

    def _block_hook(self, i: int):
        def hook(_module, inputs, out):
            x = inputs[0]
            if self.need("blocks"):
                rel = (out - x).flatten(1).norm(dim=1) / (x.flatten(1).norm(dim=1) + EPS)
                self._add("blocks", i, rel.sum().reshape(1))
            if self.need("embed"):
                self._add("embed", i, x.abs().mean(dim=1).sum(0))

        return hook

    @torch.no_grad()
    def run(self, images: torch.Tensor, progress: bool) -> None:
        bs = self.opts.batch_size
        try:
            for start in tqdm(range(0, len(images), bs), desc="calibration", unit="batch",
                              disable=not progress, leave=False):
                batch = images[start:start + bs]
                self.model(batch)
                self.images += len(batch)
        finally:
            for h in self.handles:
                h.remove()

    def mean(self, key: str, i: int) -> torch.Tensor:
        return self.stats[key][i] / self.images


def _pnorm(w: torch.Tensor, p: int, dim) -> torch.Tensor:
    return w.abs().sum(dim=dim) if p == 1 else w.pow(2).sum(dim=dim).sqrt()


def _tss_embed(model: nn.Module, p: int, act: list[torch.Tensor] | None) -> torch.Tensor:
    """Residual-channel scores: each coupled layer's per-channel score divided by its total ("total sum
    scaling"), averaged over the layers. (E,)"""
    per_layer = [_pnorm(model.patch_embed.proj.weight.flatten(1), p, 1)]
    for blk in model.blocks:
        per_layer += [_pnorm(blk.attn.qkv.weight, p, 0), _pnorm(blk.mlp.fc1.weight, p, 0),
                      _pnorm(blk.attn.proj.weight, p, 1), _pnorm(blk.mlp.fc2.weight, p, 1)]
    for name in ("head", "head_dist"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear) and head.out_features > 0:
            per_layer.append(_pnorm(head.weight, p, 0))
    per_layer += act or []
    return torch.stack([s / (s.sum() + EPS) for s in per_layer]).mean(0)


@torch.no_grad()
def compute_scores(model: nn.Module, images: torch.Tensor | None, opts: ScoreOptions,
                   wanted: frozenset[str] = frozenset(COMPONENTS), progress: bool = False) -> Scores:
    """Score every prunable unit of ``model`` (eval mode) on calibration ``images`` (N, C, H, W).

    Components not in ``wanted`` (nothing of them is pruned) get zero scores and cost no calibration work.
    """
    crit = {c: (crit if c in wanted else "zero") for c, crit in opts.criteria.items()}
    gen = torch.Generator().manual_seed(opts.seed)
    col = None
    if any(c in wanted and opts.data_driven(c) for c in COMPONENTS):
        if images is None or len(images) == 0:
            raise SnpEdgeError("data-driven criteria need calibration images")
        col = _Collector(model, opts, wanted)
        col.run(images, progress)
    qk, v, mlp, heads = [], [], [], []
    block_scores = []
    for i, blk in enumerate(model.blocks):
        attn = blk.attn
        H, dqk, dv = ((attn.num_heads, attn.qk_dim, attn.v_dim) if isinstance(attn, PrunedAttention)
                      else (attn.num_heads, attn.head_dim, attn.head_dim))
        w = attn.qkv.weight
        wq, wk, wv = w.split([H * dqk, H * dqk, H * dv], dim=0)
        # query/key pairs
        if crit["qk"] == "zero":
            qk.append(torch.zeros(H, dqk))
        elif crit["qk"] in ("snp", "snp-data", "snp-attn"):
            qk.append(col.mean("qk", i))
        elif crit["qk"] == "random":
            qk.append(torch.rand(H, dqk, generator=gen))
        else:
            p = 1 if crit["qk"] == "l1" else 2
            pair = torch.stack([wq, wk], dim=1)  # (H*dqk, 2, D)
            qk.append(_pnorm(pair.flatten(1), p, 1).reshape(H, dqk))
        # values
        if crit["v"] == "zero":
            v.append(torch.zeros(H, dv))
        elif crit["v"] == "snp":
            v.append(snp_v_scores(wv).reshape(H, dv))
        elif crit["v"] in ("snp-data", "snp-attn"):
            v.append(col.mean("v", i))
        elif crit["v"] == "random":
            v.append(torch.rand(H, dv, generator=gen))
        else:
            v.append(_pnorm(wv, 1 if crit["v"] == "l1" else 2, 1).reshape(H, dv))
        # FFN neurons
        fc1, fc2 = blk.mlp.fc1.weight, blk.mlp.fc2.weight
        if crit["mlp"] == "zero":
            mlp.append(torch.zeros(fc1.shape[0]))
        elif crit["mlp"] == "random":
            mlp.append(torch.rand(fc1.shape[0], generator=gen))
        elif crit["mlp"] in ("l1", "l2"):
            mlp.append(_pnorm(fc1, 1 if crit["mlp"] == "l1" else 2, 1))
        elif opts.ffn_score == "act":
            mlp.append(col.mean("mlp", i) * fc2.norm(dim=0))
        else:
            mlp.append(_pnorm(fc1, 1 if opts.ffn_score == "l1" else 2, 1))
        # whole heads
        if crit["heads"] == "zero":
            heads.append(torch.zeros(H))
        elif crit["heads"] in ("snp", "snp-data", "snp-attn"):
            heads.append(col.mean("heads", i))
        elif crit["heads"] == "random":
            heads.append(torch.rand(H, generator=gen))
        else:
            p = 1 if crit["heads"] == "l1" else 2
            rows = torch.cat([wq.reshape(H, -1), wk.reshape(H, -1), wv.reshape(H, -1)], dim=1)
            cols = attn.proj.weight.reshape(-1, H, dv).transpose(0, 1).reshape(H, -1)
            heads.append(_pnorm(torch.cat([rows, cols], dim=1), p, 1))
        # whole blocks
        if crit["blocks"] == "zero":
            block_scores.append(torch.zeros(()))
        elif crit["blocks"] in ("snp", "snp-data", "snp-attn"):
            block_scores.append(col.mean("blocks", i)[0])
        elif crit["blocks"] == "random":
            block_scores.append(torch.rand((), generator=gen))
        else:
            ws = [blk.attn.qkv.weight, blk.attn.proj.weight, fc1, fc2]
            p = 1 if crit["blocks"] == "l1" else 2
            block_scores.append(torch.stack([_pnorm(x.flatten(), p, 0) / x.numel() for x in ws]).sum())
    # residual width
    E = model.patch_embed.proj.out_channels
    if crit["embed"] == "zero":
        embed = torch.zeros(E)
    elif crit["embed"] == "random":
        embed = torch.rand(E, generator=gen)
    else:
        base = crit["embed"] if crit["embed"] in ("l1", "l2") else opts.embed_score
        act = [col.mean("embed", i) for i in range(len(model.blocks))] if base == "act" else None
        embed = _tss_embed(model, 2 if base == "l2" else 1, act)
    return Scores(qk=qk, v=v, mlp=mlp, heads=heads, embed=embed, blocks=torch.stack(block_scores))
