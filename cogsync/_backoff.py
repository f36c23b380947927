"""Reconnect delays: capped exponential backoff with jitter, as a pure iterator.

The iterator knows nothing of sockets or clocks; callers sleep for each delay it yields
and build a fresh iterator after a connection succeeded.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff_delays"]


def backoff_delays(
    *,
    initial: float = 0.5,
    maximum: float = 60.0,
    factor: float = 2.0,
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield an endless series of delays in seconds.

    The n-th ceiling is ``min(maximum, initial * factor**n)``; each delay is drawn
    uniformly from ``[ceiling * (1 - jitter), ceiling]`` so that many devices that lost
    the same server do not come back in lockstep.

    Args:
        initial: the first ceiling (seconds), > 0.
        maximum: the largest ceiling (seconds), >= initial.
        factor: growth per attempt, >= 1.
        jitter: the fraction of each ceiling that is randomised, in [0, 1].
        rng: the random source (a seeded `random.Random` makes the series repeatable).

    Raises:
        ValueError: a parameter is out of range.
    """
    if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter <= 1:
        raise ValueError(
            "backoff needs initial > 0, maximum >= initial, factor >= 1 and 0 <= jitter <= 1"
        )
    source = rng if rng is not None else random.Random()
    return _delays(initial, maximum, factor, jitter, source)


def _delays(
    initial: float, maximum: float, factor: float, jitter: float, rng: random.Random
) -> Iterator[float]:
    ceiling = initial
    while True:
        yield ceiling * (1 - jitter * rng.random())
        ceiling = min(maximum, ceiling * factor)
