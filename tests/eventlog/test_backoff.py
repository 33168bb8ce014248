"""One backoff for every retry loop: exponential, capped, jittered."""

from __future__ import annotations

import itertools

import pytest

from eventlog.backoff import delays


def test_without_jitter_the_delays_double_up_to_the_cap() -> None:
    assert list(itertools.islice(delays(0.1, 0.5, jitter=None), 5)) == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_jitter_keeps_each_delay_within_its_exponential_step() -> None:
    steps = list(itertools.islice(delays(0.1, 0.5, jitter=None), 8))
    for _ in range(200):
        jittered = list(itertools.islice(delays(0.1, 0.5), 8))
        assert all(0 <= d <= step for d, step in zip(jittered, steps, strict=True))
    runs = {tuple(itertools.islice(delays(0.1, 0.5), 4)) for _ in range(20)}
    assert len(runs) > 1  # processes that lost the server together do not retry in step


def test_an_initial_delay_above_the_cap_starts_at_the_cap() -> None:
    assert list(itertools.islice(delays(5.0, 1.0, jitter=None), 3)) == [1.0, 1.0, 1.0]


def test_non_positive_delays_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        next(delays(0.0, 1.0))
