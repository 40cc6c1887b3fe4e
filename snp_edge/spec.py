"""What to prune and how, as one object: a :class:`PruneSpec`, built once (by the command line's argument
groups, :func:`snp_edge.cli.args.prune_spec`, or from :func:`snp_edge.prune`'s keywords) and taken by
:func:`snp_edge.api.prune_spec`, ``run``, ``compare`` and the experiments.

Each rule lives here once: "exactly one pruning target" (:meth:`Target.require_one`) and the ``--round-to``
default (:func:`round_to_for`). No torch: the command line builds a spec before importing anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .criteria import DEFAULT_EMBED_SCORE
from .errors import SnpEdgeError

FIXED = ("preset", "config")  # widths given
BUDGETS = ("target_gmacs", "target_latency", "target_speedup")  # widths found to meet a budget
TARGET_KEYS = (*FIXED, *BUDGETS)
FLAGS = {"preset": "--preset", "config": "--config", "target_gmacs": "--target-gmacs",
         "target_latency": "--target-latency", "target_speedup": "--target-speedup"}


@dataclass(frozen=True)
class Target:
    """The pruning target: one of a preset, a config (file or dict), a GMACs / latency (ms) / speed-up budget;
    ``latency_table``: the table behind a latency budget (with any target: the predicted latency)."""

    preset: str | None = None
    config: str | Path | dict | None = None
    target_gmacs: float | None = None
    target_latency: float | None = None
    target_speedup: float | None = None
    latency_table: str | Path | None = None

    def given(self, keys: tuple[str, ...] = TARGET_KEYS) -> list[str]:
        """The names of ``keys`` that are set, in :data:`TARGET_KEYS` order."""
        return [k for k in keys if getattr(self, k) is not None]

    def require_one(self, keys: tuple[str, ...] = TARGET_KEYS, at_most: bool = False) -> str | None:
        """The one target of ``keys`` that is set (``at_most``: or None when none is); the one place that
        refuses none or several, naming the flags."""
        given = self.given(keys)
        if len(given) > 1 or (not given and not at_most):
            flags = ", ".join(FLAGS[k] for k in keys)
            raise SnpEdgeError(f"give {'at most' if at_most else 'exactly'} one of {flags}"
                               + (f", not {', '.join(FLAGS[k] for k in given)}" if given else ""))
        return given[0] if given else None

    def only(self, key: str, value) -> Target:
        """This target with ``key`` = ``value`` and the other targets cleared (the table stays)."""
        return replace(Target(latency_table=self.latency_table), **{key: value})


@dataclass(frozen=True)
class Calibration:
    """Calibration images: ``source`` (image folder, ``.npy``, None: seeded noise), how many, the seed of the
    sample (and of every random choice), images per forward pass."""

    source: str | Path | None = None
    images: int = 64
    seed: int = 0
    batch_size: int = 16


@dataclass(frozen=True)
class Scoring:
    """How neurons are scored and how a budget becomes widths (the research knobs; defaults measured best)."""

    criteria: dict[str, str] | str | None = None  # None: the default criteria; a string: every component
    gamma: int = 8
    ffn_score: str = "act"
    embed_score: str = DEFAULT_EMBED_SCORE
    rescore: bool = False
    allocation: str = "score"
    group_weight: str = "fisher"  # for every budget (docs/accuracy.md, issue 21); "auto" is its alias
    sublayers: bool = True  # with measured weights an FFN or attention may be removed (width 0, snp_edge.sublayers)


@dataclass(frozen=True)
class Alignment:
    """Structure and hardware alignment: heads kept, blocks dropped, the width multiple (None: the default of
    :func:`round_to_for`) and the device targets it follows."""

    heads: int | None = None
    drop_blocks: int = 0
    round_to: int | None = None
    device_targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class PruneSpec:
    """Everything :func:`snp_edge.api.prune_spec` needs: the model (timm name, ``weights``, ``model_args``)
    and the four parts above."""

    model: str
    weights: str = "auto"
    model_args: dict = field(default_factory=dict)
    target: Target = Target()
    calibration: Calibration = Calibration()
    scoring: Scoring = Scoring()
    alignment: Alignment = Alignment()

    def with_target(self, key: str, value) -> PruneSpec:
        """This spec pruned to one other target (``compare`` prunes one spec to each target given)."""
        return replace(self, target=self.target.only(key, value))

    @classmethod
    def of(cls, model: str, *, weights: str = "auto", model_args: dict | None = None, preset=None, config=None,
           target_gmacs=None, target_latency=None, target_speedup=None, latency_table=None, allocation="score",
           calib=None, calib_images: int = 64, seed: int = 0, criteria=None, gamma: int = 8, ffn_score="act",
           embed_score=None, heads=None, drop_blocks: int = 0, round_to=None, batch_size: int = 16,
           rescore: bool = False, group_weight: str = "fisher", device_targets=(), sublayers: bool = True) -> PruneSpec:
        """A spec from :func:`snp_edge.prune`'s flat keywords (the names and defaults of the public API)."""
        return cls(model, weights, dict(model_args or {}),
                   Target(preset, config, target_gmacs, target_latency, target_speedup, latency_table),
                   Calibration(calib, calib_images, seed, batch_size),
                   Scoring(criteria, gamma, ffn_score, embed_score or DEFAULT_EMBED_SCORE, rescore, allocation, group_weight,
                           sublayers),
                   Alignment(heads, drop_blocks, round_to, tuple(device_targets)))


def device_multiple(device_targets) -> int:
    """The width multiple every device target gains from (1: none, or one without tensor cores)."""
    from .engines.common.targets import width_multiple_for

    return width_multiple_for(list(device_targets))


def round_to_for(round_to: int | None, device_targets=(), table_alignment: int | None = None) -> int:
    """The one ``--round-to`` rule: the value given; else the device targets' multiple when above 1 (8 for FP16
    tensor cores); else, for a latency budget, its table's alignment (the table measured aligned widths only);
    else 1 (exact widths)."""
    if round_to is not None:
        return round_to
    multiple = device_multiple(device_targets)
    if multiple > 1:
        return multiple
    return table_alignment or 1
