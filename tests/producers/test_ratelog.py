from __future__ import annotations

import logging

import pytest

from producers.ratelog import RateLimitedLog


def test_one_line_per_kind_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("t.ratelog"), 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t.ratelog"):
        assert log.warning("a", "first")
        for _ in range(500):
            assert not log.warning("a", "again", count=2)
        assert log.warning("b", "other kind")
        now[0] = 10.0
        assert log.warning("a", "later")
    assert [r.getMessage() for r in caplog.records] == [
        "first",
        "other kind",
        "later (+1000 more since the last report)",
    ]
