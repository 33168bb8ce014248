"""``track()`` and the contract's bounds (issue 17 items 1-3): what the sink would refuse or
choke on is refused here, with ``None`` and ``on_error``, never an exception; and every event
``track()`` accepts decodes into a row through the sink's own decoder.

No broker: the tracker's ``produce`` is replaced by a list (the record bytes it would send).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers import EventRejected, Tracker, TrackingError
from schemas.acceptance import AcceptanceRule
from schemas.config import KafkaSettings
from sinks.config import SinkConfig
from sinks.records import split
from tests.fixtures.custom import meter_registered
from tests.sinks.conftest import message

NOWHERE = KafkaSettings(bootstrap_servers="127.0.0.1:9")
Sent = list[tuple[bytes, bytes]]


@pytest.fixture(scope="module")
def harness() -> Iterator[tuple[Tracker, Sent, list[TrackingError]]]:
    sent: Sent = []
    errors: list[TrackingError] = []
    with meter_registered(), tempfile.TemporaryDirectory() as tmp:
        tr = Tracker(
            NOWHERE,
            topic="nowhere.events",
            spool_dir=Path(tmp),
            on_error=errors.append,
            source="web",
        )
        tr._produce = lambda _t, value, key, headers: sent.append((key, value))  # type: ignore[method-assign,assignment]
        with tr:
            yield tr, sent, errors


ONE_AD = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize(
    ("type_name", "kwargs", "field", "rule"),
    [
        ("page_view", {"occurred_at": ONE_AD, "path": "/x"}, "occurred_at", "out_of_range"),
        ("meter", {"count": 2**64, "value": 1.0}, "properties.count", "out_of_range"),
        ("meter", {"count": 1, "value": math.nan}, "properties.value", "finite_number"),
        ("meter", {"count": 1, "value": math.inf}, "properties.value", "finite_number"),
        ("meter", {"count": 1, "value": -math.inf}, "properties.value", "finite_number"),
        ("page_view", {"path": "/x", "duration_ms": True}, "properties.duration_ms", "int_type"),
        ("page_view", {"path": "/x", "duration_ms": "1200"}, "properties.duration_ms", "int_type"),
        (
            "login",
            {"method": "sso", "provider": "a\u0000b"},
            "properties.provider",
            "nul_character",
        ),
    ],
)
def test_what_the_sink_cannot_store_is_refused_with_none_and_on_error(
    harness: tuple[Tracker, Sent, list[TrackingError]],
    type_name: str,
    kwargs: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    tr, sent, errors = harness
    before_sent, before_errors = len(sent), len(errors)
    assert tr.track(type_name, "u1", **kwargs) is None  # never raises
    assert len(sent) == before_sent
    (error,) = errors[before_errors:]
    assert isinstance(error, EventRejected)
    assert [(e.field, e.rule) for e in error.errors] == [(field, rule)]


def test_strict_mode_raises_the_named_rejection(tmp_path: Path) -> None:
    from schemas import InvalidEvent

    tr = Tracker(NOWHERE, topic="t", spool_dir=tmp_path, source="web", strict=True)
    with tr, pytest.raises(InvalidEvent, match=r"^occurred_at: out of range$"):
        tr.track("page_view", "u1", occurred_at=ONE_AD, path="/x")


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
)
calls = st.one_of(
    st.builds(
        lambda when, path, ms: (
            "page_view",
            {"occurred_at": when, "path": path, "duration_ms": ms},
        ),
        st.one_of(st.none(), st.datetimes(timezones=offsets), st.datetimes()),
        st.one_of(st.just("/x"), st.text(max_size=12).map(lambda t: "/" + t)),
        numbers,
    ),
    st.builds(lambda c, v: ("meter", {"count": c, "value": v}), numbers, numbers),
    st.builds(lambda p: ("login", {"method": "sso", "provider": p}), st.text(max_size=12)),
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(calls, min_size=1, max_size=5))
def test_track_accepts_or_names_a_rejection_and_the_sink_decodes_what_it_accepts(
    harness: tuple[Tracker, Sent, list[TrackingError]],
    batch: list[tuple[str, dict[str, Any]]],
) -> None:
    tr, sent, errors = harness
    sent.clear()
    errors.clear()
    results = []
    for type_name, props in batch:
        kwargs = {k: v for k, v in props.items() if v is not None or k != "occurred_at"}
        if kwargs.get("duration_ms") is None:
            kwargs.pop("duration_ms", None)
        results.append(tr.track(type_name, "u1", **kwargs))  # never raises
    accepted = [r for r in results if r is not None]
    assert len(accepted) == len(sent)
    assert len(errors) == len(results) - len(accepted)
    assert all(isinstance(e, EventRejected) and e.errors for e in errors)
    now = int(time.time() * 1000) + 3_600_000
    records = [message(v, key=k, offset=i, timestamp_ms=now) for i, (k, v) in enumerate(sent)]
    rows, rejected = split(records, SinkConfig(acceptance=AcceptanceRule(future_policy="clamp")))
    assert not rejected, [r.errors for r in rejected]
    assert [str(r.event_id) for r in rows] == accepted
