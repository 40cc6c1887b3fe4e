"""The criteria as a registry of importance classes (in the manner of Torch-Pruning's ``Importance`` classes
and timm's model registry): a criterion is one class, registered once with :func:`register`; the command
line's choices (:data:`snp_edge.criteria.CRITERIA`), :meth:`ScoreOptions.data_driven
<snp_edge.criteria.ScoreOptions.data_driven>` and :func:`~snp_edge.criteria.collect.compute_scores` all read
:data:`REGISTRY`.

A criterion scores each component from a view: ``b`` is a :class:`~snp_edge.criteria.collect.BlockView` (one
block's weights, its calibration statistics, the shared seeded generator), ``m`` a
:class:`~snp_edge.criteria.collect.ModelView` (the model, the images, the residual-width measurements). Shapes:
``qk`` (H, d_qk), ``v`` (H, d_v), ``mlp`` (M,), ``heads`` (H,), ``blocks`` () and ``embed`` (E,); higher = kept.

This module imports no torch at load time (the command line lists the names without it); the few torch
functions a score needs are imported where it is computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# Annotation names only: importing ScoreOptions (criteria/__init__) or the views (.collect) here would put this
# module on an import cycle (tests/test_architecture.py).
ScoreOptions = BlockView = ModelView = Any

REGISTRY: dict[str, Criterion] = {}  # name -> criterion, in the order the command line lists them


def register(cls: type[Criterion]) -> type[Criterion]:
    """Class decorator: add one instance of ``cls`` to :data:`REGISTRY` under ``cls.name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"criterion {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def pnorm(w: torch.Tensor, p: int, dim) -> torch.Tensor:
    """l1 (``p`` 1) or l2 norm of ``w`` along ``dim``."""
    return w.abs().sum(dim=dim) if p == 1 else w.pow(2).sum(dim=dim).sqrt()


class Criterion:
    """How one criterion scores every component (override the components it scores differently)."""

    name: str = ""
    public: bool = True  # offered by --criterion (the internal "zero" is not)

    def data_driven(self, comp: str, opts: ScoreOptions) -> bool:
        """Whether scoring ``comp`` reads calibration images (the collector's hooks run for it)."""
        return False

    def qk_statistic(self, q: torch.Tensor, k: torch.Tensor, attn, opts: ScoreOptions) -> torch.Tensor:
        """Per-image Q/K pair scores (B, H, d_qk) from one block's queries and keys (B, H, N, d_qk), for a
        criterion whose ``qk`` is data-driven."""
        raise NotImplementedError(f"criterion {self.name!r} has no calibration Q/K statistic")

    def score(self, comp: str, view) -> torch.Tensor:
        """The scores of ``comp`` (a name of :data:`~snp_edge.criteria.COMPONENTS`) from its view."""
        return getattr(self, comp)(view)

    def qk(self, b: BlockView) -> torch.Tensor:
        raise NotImplementedError

    def v(self, b: BlockView) -> torch.Tensor:
        raise NotImplementedError

    def mlp(self, b: BlockView) -> torch.Tensor:
        raise NotImplementedError

    def heads(self, b: BlockView) -> torch.Tensor:
        raise NotImplementedError

    def blocks(self, b: BlockView) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, m: ModelView) -> torch.Tensor:
        raise NotImplementedError


class _SnpFamily(Criterion):
    """The data-driven criteria: query/key pairs, heads and blocks from calibration statistics; FFN neurons by
    ``--ffn-score``, residual channels by ``--embed-score``; values from data unless ``weight_values``."""

    weight_values = False

    def data_driven(self, comp: str, opts: ScoreOptions) -> bool:
        if comp == "mlp":
            return opts.ffn_score == "act"
        if comp == "embed":
            return opts.embed_reads_data
        if comp == "v":
            return not self.weight_values
        return True

    def qk(self, b: BlockView) -> torch.Tensor:
        return b.stat("qk")

    def v(self, b: BlockView) -> torch.Tensor:
        return b.stat("v")

    def mlp(self, b: BlockView) -> torch.Tensor:
        if b.opts.ffn_score == "act":
            return b.stat("mlp") * b.fc2.norm(dim=0)
        return pnorm(b.fc1, 1 if b.opts.ffn_score == "l1" else 2, 1)

    def heads(self, b: BlockView) -> torch.Tensor:
        return b.stat("heads")

    def blocks(self, b: BlockView) -> torch.Tensor:
        return b.stat("blocks")[0]

    def embed(self, m: ModelView) -> torch.Tensor:
        return m.base_embed(m.opts.embed_score)


@register
class Snp(_SnpFamily):
    """The paper's criteria, literally: Q/K pairs by their alignment with S^h's top-gamma singular triplets,
    values by inter-head weight similarity."""

    name = "snp"
    weight_values = True

    def qk_statistic(self, q, k, attn, opts):
        from .snp import snp_qk_scores

        return snp_qk_scores(q, k, opts.gamma)

    def v(self, b: BlockView) -> torch.Tensor:
        from .snp import snp_v_scores

        return snp_v_scores(b.wv).reshape(b.H, b.dv)


@register
class SnpData(_SnpFamily):
    """Ours: Q/K pairs by E|q_i||k_i|, values by what the attention output loses (E|A_h v_i| |W_proj[:, i]|)."""

    name = "snp-data"

    def qk_statistic(self, q, k, attn, opts):
        return q.norm(dim=2) * k.norm(dim=2)


@register
class SnpAttn(_SnpFamily):
    """Our attention-sensitivity variant of the Q/K score (:func:`~snp_edge.criteria.snp.attn_qk_scores`)."""

    name = "snp-attn"

    def qk_statistic(self, q, k, attn, opts):
        from .snp import attn_qk_scores

        return attn_qk_scores(q, k, attn.scale)


class _PNorm(Criterion):
    """Weight magnitude: the ``p``-norm of the weights each unit owns (Torch-Pruning's MagnitudeImportance)."""

    p = 1

    def qk(self, b: BlockView) -> torch.Tensor:
        import torch

        pair = torch.stack([b.wq, b.wk], dim=1)  # (H*d_qk, 2, D)
        return pnorm(pair.flatten(1), self.p, 1).reshape(b.H, b.dqk)

    def v(self, b: BlockView) -> torch.Tensor:
        return pnorm(b.wv, self.p, 1).reshape(b.H, b.dv)

    def mlp(self, b: BlockView) -> torch.Tensor:
        return pnorm(b.fc1, self.p, 1)

    def heads(self, b: BlockView) -> torch.Tensor:
        import torch

        H = b.H
        rows = torch.cat([b.wq.reshape(H, -1), b.wk.reshape(H, -1), b.wv.reshape(H, -1)], dim=1)
        cols = b.attn.proj.weight.reshape(-1, H, b.dv).transpose(0, 1).reshape(H, -1)
        return pnorm(torch.cat([rows, cols], dim=1), self.p, 1)

    def blocks(self, b: BlockView) -> torch.Tensor:
        import torch

        ws = [b.attn.qkv.weight, b.attn.proj.weight, b.fc1, b.fc2]
        return torch.stack([pnorm(x.flatten(), self.p, 0) / x.numel() for x in ws]).sum()

    def embed(self, m: ModelView) -> torch.Tensor:
        return m.base_embed(self.name)


@register
class L1(_PNorm):
    name = "l1"
    p = 1


@register
class L2(_PNorm):
    name = "l2"
    p = 2


@register
class Random(Criterion):
    """Seeded uniform scores (one generator for the whole model, drawn block by block)."""

    name = "random"

    def qk(self, b: BlockView) -> torch.Tensor:
        return b.rand(b.H, b.dqk)

    def v(self, b: BlockView) -> torch.Tensor:
        return b.rand(b.H, b.dv)

    def mlp(self, b: BlockView) -> torch.Tensor:
        return b.rand(b.fc1.shape[0])

    def heads(self, b: BlockView) -> torch.Tensor:
        return b.rand(b.H)

    def blocks(self, b: BlockView) -> torch.Tensor:
        return b.rand(())

    def embed(self, m: ModelView) -> torch.Tensor:
        return m.rand(m.width)


@register
class Zero(Criterion):
    """Zeros, for the components nothing of which is pruned (no calibration work is spent on them)."""

    name = "zero"
    public = False

    def qk(self, b: BlockView) -> torch.Tensor:
        return b.zeros(b.H, b.dqk)

    def v(self, b: BlockView) -> torch.Tensor:
        return b.zeros(b.H, b.dv)

    def mlp(self, b: BlockView) -> torch.Tensor:
        return b.zeros(b.fc1.shape[0])

    def heads(self, b: BlockView) -> torch.Tensor:
        return b.zeros(b.H)

    def blocks(self, b: BlockView) -> torch.Tensor:
        return b.zeros(())

    def embed(self, m: ModelView) -> torch.Tensor:
        return m.zeros(m.width)
