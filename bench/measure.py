"""The measurement loop: run a plan of interleaved blocks over prepared runners."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .backends import Runner
from .schedule import Block

Progress = Callable[[int, int], None]


@dataclass
class Measurement:
    """Per-candidate latencies in ms, in run order; ``partial`` when interrupted (Ctrl-C) before the end."""

    times_ms: list[list[float]]
    partial: bool = False


def measure(runners: Sequence[Runner], plan: Sequence[Block], rewarm: int = 1,
            progress: Progress | None = None) -> Measurement:
    """Execute ``plan``. Each measured block that follows a different candidate starts with ``rewarm``
    untimed runs (caches and thread pools switch models; every candidate pays this alike).

    ``progress(done, total)`` is called after each block with the runs made so far and in all (warm-up
    included). A
    KeyboardInterrupt, from a runner or from ``progress``, ends the loop and keeps what was measured.
    """
    times: list[list[float]] = [[] for _ in runners]
    total, done = sum(b.iters for b in plan), 0
    previous = None
    try:
        for block in plan:
            runner = runners[block.candidate]
            if block.warmup:
                runner.run_block(0, warmup=block.iters)
            else:
                extra = rewarm if block.candidate != previous else 0
                times[block.candidate].extend(runner.run_block(block.iters, warmup=extra))
            previous, done = block.candidate, done + block.iters
            if progress is not None:
                progress(done, total)
    except KeyboardInterrupt:
        return Measurement(times, partial=True)
    return Measurement(times)
