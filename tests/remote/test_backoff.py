"""The reconnect delay series of `cogsync._backoff`."""

from __future__ import annotations

import itertools
import random

import pytest

from cogsync._backoff import backoff_delays


def take(n: int, **kwargs: object) -> list[float]:
    return list(itertools.islice(backoff_delays(**kwargs), n))  # type: ignore[arg-type]


def test_without_jitter_the_ceiling_doubles_up_to_the_maximum() -> None:
    assert take(7, initial=0.5, maximum=10.0, jitter=0.0) == [0.5, 1, 2, 4, 8, 10, 10]


def test_each_delay_lies_in_its_jitter_window() -> None:
    delays = take(40, initial=1.0, maximum=30.0, factor=3.0, jitter=0.25, rng=random.Random(7))
    ceilings = [min(30.0, 3.0**n) for n in range(40)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling * 0.75 <= delay <= ceiling


def test_jitter_spreads_devices_apart() -> None:
    first = take(10, rng=random.Random(1))
    second = take(10, rng=random.Random(2))
    assert first != second
    assert len({round(d, 9) for d in take(50, maximum=1.0, rng=random.Random(3))}) > 40


def test_a_seeded_rng_repeats_the_series() -> None:
    assert take(12, rng=random.Random(42)) == take(12, rng=random.Random(42))


def test_the_series_never_ends() -> None:
    delays = backoff_delays(initial=0.01, maximum=0.02)
    assert all(0 < next(delays) <= 0.02 for _ in range(10_000))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0},
        {"initial": 2.0, "maximum": 1.0},
        {"factor": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
    ],
)
def test_out_of_range_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        backoff_delays(**kwargs)  # type: ignore[arg-type]
