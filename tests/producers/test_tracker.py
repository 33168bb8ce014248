"""The tracker's promises to its host that need no broker: it never raises (unless strict),
reports every invalid event once, and accounts for every event it accepted.

The broker address points at a closed port: the real client, nothing listening.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest

import schemas
from producers import DeliveryFailed, EventRejected, EventsDropped, Tracker, TrackingError
from schemas import InvalidEvent, PageView
from schemas.config import KafkaSettings
from tests.fixtures.samples import SAMPLE_PROPERTIES

NOWHERE = KafkaSettings(bootstrap_servers="127.0.0.1:9")


def tracker(tmp_path: Path, errors: list[TrackingError] | None = None, **options: Any) -> Tracker:
    options.setdefault("source", "unit")
    return Tracker(
        NOWHERE,
        topic="nowhere.events",
        spool_dir=tmp_path / "spool",
        on_error=errors.append if errors is not None else None,
        **options,
    )


GARBAGE: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
    (("page_view", "u-1"), {"path": "relative"}, "properties.path"),
    (("page_view", "u-1"), {"path": "/x", "email": "a@b.c"}, "properties.email"),
    (("page_view", "a@b.c"), {"path": "/x"}, "user_id"),
    (("page_view",), {"path": "/x"}, "user_id"),  # no user context
    (("no_such_type", "u-1"), {}, "type"),
    ((42, "u-1"), {}, "type"),
    (("login", "u-1"), {"method": "telepathy"}, "properties.method"),
    (("page_view", "u-1"), {"path": "/x", "occurred_at": "yesterday"}, "occurred_at"),
    (("page_view", "u-1"), {"path": "/x", "properties": {"path": "/y"}}, "properties"),
]


def test_invalid_events_never_raise_and_are_reported_once(tmp_path: Path) -> None:
    errors: list[TrackingError] = []
    with tracker(tmp_path, errors) as tr:
        for args, kwargs, _field in GARBAGE:
            assert tr.track(*args, **kwargs) is None
        stats = tr.stats()
    rejected = [e for e in errors if isinstance(e, EventRejected)]
    assert [e.fields[0] for e in rejected] == [field for *_, field in GARBAGE]
    assert stats.invalid == len(GARBAGE) and stats.tracked == 0


@pytest.mark.parametrize(("args", "kwargs", "field"), GARBAGE)
def test_strict_mode_raises_the_validation_error(
    tmp_path: Path, args: tuple[Any, ...], kwargs: dict[str, Any], field: str
) -> None:
    with tracker(tmp_path, strict=True) as tr, pytest.raises(InvalidEvent) as info:
        tr.track(*args, **kwargs)
    assert info.value.fields[0] == field


def test_every_event_is_accounted_for_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    errors: list[TrackingError] = []
    with tracker(tmp_path, errors, delivery_timeout_ms=1000, resend_interval_seconds=0.2) as tr:
        ids = [tr.track("search", f"u-{i % 3}", query_length=3, result_count=i) for i in range(500)]
        tr.track(schemas.Logout(user_id="u-9", source="unit", properties={}))
        time.sleep(1.6)
        tr.flush(0.5)
        during = tr.stats()
        assert during.delivered == 0 and during.spooled >= 501
        assert during.unexplained == 0
        final = tr.close(0.5)
    assert None not in ids and len(set(ids)) == 500
    assert final.tracked == 501 == final.in_spool + final.dropped and final.unexplained == 0
    assert any(isinstance(e, DeliveryFailed) and e.count for e in errors)  # reported, batched
    assert len(errors) < 50  # not one report per event


def test_events_after_close_are_dropped_with_a_reason(tmp_path: Path) -> None:
    errors: list[TrackingError] = []
    tr = tracker(tmp_path, errors)
    tr.close(0)
    late = datetime.now(UTC)
    assert tr.track("page_view", "u-1", path="/late") is None  # not sent: no id to hand out
    assert tr.track("page_view", "u-1", path="/late", occurred_at=late) is None
    event = PageView(user_id="u-1", source="unit", properties={"path": "/late"})
    assert tr.track(event) is None
    assert tr.stats().dropped_by_reason == {"closed": 3}
    # on_error hears of each at once: the poller that reports problems has stopped
    assert [(e.reason, e.count) for e in errors if isinstance(e, EventsDropped)] == [
        ("closed", 1)
    ] * 3


def test_a_failing_on_error_callback_does_not_reach_the_caller(tmp_path: Path) -> None:
    def explode(_error: TrackingError) -> None:
        raise RuntimeError("host bug")

    with Tracker(NOWHERE, source="unit", spool_dir=tmp_path, on_error=explode) as tr:
        assert tr.track("page_view", "u-1", path="bad") is None


def test_counters_are_exposed_to_prometheus(tmp_path: Path) -> None:
    with tracker(tmp_path, source="prom-unit") as tr:
        tr.track("page_view", "u-1", path="bad")
        text = generate_latest(REGISTRY).decode()
    assert 'brainstream_sdk_invalid_total{source="prom-unit"} 1.0' in text
    for name in ("tracked", "delivered", "spooled", "resent", "dropped"):
        assert f"brainstream_sdk_{name}_total" in text


@pytest.mark.parametrize("type_name", schemas.REGISTRY.names())
def test_track_writes_what_the_contract_encodes(tmp_path: Path, type_name: str) -> None:
    """``track()`` inlines the encoder's hot path: its records must still be the contract's."""
    sample = SAMPLE_PROPERTIES[type_name]
    model: Any = schemas.REGISTRY.get(type_name).model_fields["properties"].annotation
    sent: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    with tracker(tmp_path, source="web") as tr:
        tr._produce = lambda _t, value, key, headers: sent.append((key, value, headers))  # type: ignore[method-assign,assignment]
        # the sample, and each field given as an explicit None (the model's path decides)
        for props in [sample, *({**sample, field: None} for field in sample)]:
            before = len(sent)
            with tr.user("user-7"):
                event_id = tr.track(type_name, **props)
            try:
                expected = model.model_validate(props)
            except ValueError:
                assert event_id is None and len(sent) == before
                continue
            assert event_id is not None and len(sent) == before + 1
            key, value, headers = sent[-1]
            event = schemas.decode(value)
            assert str(event.event_id) == event_id and key == b"user-7"
            assert event.user_id == "user-7" and event.type == type_name and event.source == "web"
            assert event.properties == expected
            assert schemas.encode(event) == value  # byte for byte, field order included
            assert dict(headers) == dict(schemas.headers(event))
