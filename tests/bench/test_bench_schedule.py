"""The interleaving plan: equal runs per candidate, order varying across rounds, reproducible."""

from collections import Counter

import pytest
from snp_edge.bench.schedule import default_block, make_plan


def test_every_candidate_gets_the_same_runs():
    plan = make_plan(4, warmup=7, runs=23, block=5, seed=1)
    for warm, want in ((True, 7), (False, 23)):
        per = Counter()
        for b in plan:
            if b.warmup == warm:
                per[b.candidate] += b.iters
        assert per == dict.fromkeys(range(4), want)
    assert [b.warmup for b in plan] == sorted((b.warmup for b in plan), reverse=True)  # warm-up first
    assert {b.iters for b in plan if not b.warmup} == {5, 3}  # 23 = 4 x 5 + 3


def test_each_round_visits_every_candidate_in_varying_order():
    n = 5
    measured = [b.candidate for b in make_plan(n, 0, 100, 10, seed=0) if not b.warmup]
    rounds = [tuple(measured[i:i + n]) for i in range(0, len(measured), n)]
    assert len(rounds) == 10
    assert all(sorted(r) == list(range(n)) for r in rounds)
    assert len(set(rounds)) > 1


def test_deterministic_with_seed():
    assert make_plan(3, 10, 50, 5, seed=7) == make_plan(3, 10, 50, 5, seed=7)
    assert make_plan(3, 10, 50, 5, seed=7) != make_plan(3, 10, 50, 5, seed=8)


def test_default_block_and_bad_arguments():
    assert default_block(1000) == 50
    assert default_block(30) == 3
    assert default_block(5) == 1
    with pytest.raises(ValueError):
        make_plan(0, 0, 10, 1)
    with pytest.raises(ValueError):
        make_plan(2, 0, 0, 1)
