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
embed     total-sum-scaled per-layer scores averaged     same                        same, with p-norm
          over the coupled layers (``--embed-score``: l1/l2
          of the weights, act: + E|x| of block inputs, ln:
          E|LN(x)_c| |W[:,c]| into qkv, fc1 and the head
          (LayerNorm gains and biases included) and
          E|out_c| of proj and fc2; fisher: sum over
          images of (dL/dm_c)^2 for a mask m on the
          stream; ablation: KL of the output with
          channel c removed; kl: channels removed in
          chunks, each chosen greedily on a second-order
          estimate of the output's KL, re-estimated
          after each chunk; removal simulated exactly,
          LayerNorm statistics included: .residual)
heads     E |A_h V_h W_proj^h|: the head's share of      same                        p-norm of the head's
          the attention output                                                       qkv rows + proj cols
blocks    E |f(x)| / |x|: relative residual update       same                        mean |w| of the block
========  ============================================  ==========================  ======================

``random`` gives seeded uniform scores everywhere. The paper does not publish gamma, the FFN and
residual base scores, or how heads are chosen: those choices are ours, documented here, and switchable.

Where things are: this module holds the names, the defaults and :class:`ScoreOptions` (no torch, so the
command line stays fast); :mod:`.importance` holds the criteria, one registered class each (a new criterion is
one class there); :mod:`.snp` holds the SNP maths (the Q/K singular-vector criterion, the value
similarity rule); :mod:`.collect` runs the calibration images and scores every component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SnpEdgeError
from .importance import REGISTRY

CRITERIA = tuple(name for name, crit in REGISTRY.items() if crit.public)  # snp snp-data snp-attn l1 l2 random
COMPONENTS = ("qk", "v", "mlp", "embed", "heads", "blocks")
# The default: the paper's criteria, except for value neurons, where the paper's weight-similarity rule
# measured far worse than every baseline and the data-driven output score best (docs/accuracy.md).
DEFAULT_CRITERIA = {**dict.fromkeys(COMPONENTS, "snp"), "v": "snp-data"}
FFN_SCORES = ("act", "l1", "l2")
EMBED_SCORES = ("l1", "l2", "act", "ln", "fisher", "ablation", "kl")
DATA_DRIVEN_EMBED_SCORES = ("act", "ln", "fisher", "ablation", "kl")  # read calibration images
# Residual channels: "kl" beat the weight-only "l1" before fine-tuning but not after distillation, and costs more
# (docs/accuracy.md, "The residual-width criterion"): "l1" stays the default.
DEFAULT_EMBED_SCORE = "l1"


@dataclass
class ScoreOptions:
    """Which criterion scores each component, and the free parameters the paper leaves open."""

    criteria: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CRITERIA))
    gamma: int = 8  # singular triplets of S^h used by the snp Q/K score
    ffn_score: str = "act"  # base score of FFN neurons under snp / snp-data
    embed_score: str = DEFAULT_EMBED_SCORE  # per-layer base score of residual channels under snp / snp-data
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

    @property
    def embed_reads_data(self) -> bool:
        """Whether ``embed_score`` reads calibration images."""
        return self.embed_score in DATA_DRIVEN_EMBED_SCORES

    def data_driven(self, comp: str) -> bool:
        """Whether scoring ``comp`` under its criterion reads calibration images."""
        return REGISTRY[self.criteria[comp]].data_driven(comp, self)


_LAZY = {"compute_scores": "collect", "Scores": "collect", "snp_qk_scores": "snp", "attn_qk_scores": "snp",
         "snp_v_scores": "snp"}


def __getattr__(name: str):
    """The torch-side names, imported on first use (``from snp_edge.criteria import compute_scores``)."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
