"""Interleaved measurement plans: every candidate runs in short blocks, in a fresh random order each round,
so slow drift (thermal throttling, other load, clock changes) hits all candidates alike."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """``iters`` consecutive runs of candidate ``candidate``; warm-up runs are not recorded."""

    candidate: int
    iters: int
    warmup: bool


def default_block(runs: int) -> int:
    """Runs per block: at least 10 rounds where ``runs`` allows, at most 50 runs per block."""
    return max(1, min(50, runs // 10))


def _rounds(n_candidates: int, iters: int, block: int, rng: random.Random, warmup: bool) -> list[Block]:
    """``iters`` runs per candidate split into blocks of ``block`` (the last may be shorter);
    each round visits every candidate once, in an order drawn from ``rng``."""
    plan = []
    done = 0
    while done < iters:
        k = min(block, iters - done)
        order = list(range(n_candidates))
        rng.shuffle(order)
        plan.extend(Block(c, k, warmup) for c in order)
        done += k
    return plan


def make_plan(n_candidates: int, warmup: int, runs: int, block: int, seed: int = 0) -> list[Block]:
    """The whole plan: interleaved warm-up rounds, then interleaved measured rounds (same block size).

    Deterministic for a given ``seed``; every candidate gets exactly ``warmup`` + ``runs`` runs.
    """
    if n_candidates < 1 or runs < 1 or block < 1 or warmup < 0:
        raise ValueError("need at least one candidate, runs >= 1, block >= 1 and warmup >= 0")
    rng = random.Random(seed)
    return _rounds(n_candidates, warmup, block, rng, True) + _rounds(n_candidates, runs, block, rng, False)
