"""What users of other analytics SDKs expect, where it fits an ids-only system: a disabled
tracker for tests (in memory), a ``before_send`` hook (drop or modify, before validation) and
per-type sampling. No broker: nothing is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, generate_latest

from producers import EventRejected, Tracker, TrackingError


def test_a_disabled_tracker_validates_and_records_in_memory(tmp_path: Path) -> None:
    errors: list[TrackingError] = []
    with Tracker.disabled(source="unit", on_error=errors.append) as tracker:
        first = tracker.track("page_view", "u-1", path="/a")
        with tracker.user("u-2"):
            second = tracker.track("page_view", path="/b", duration_ms=12)
        assert tracker.track("page_view", "u-1", path="relative") is None  # still validated
        recorded = tracker.recorded()
        stats = tracker.stats()
        spool_dir = tracker._outbox.spool.directory
    assert [str(e.event_id) for e in recorded] == [first, second]
    assert [(e.user_id, e.properties.path) for e in recorded] == [("u-1", "/a"), ("u-2", "/b")]  # type: ignore[attr-defined]
    assert stats.tracked == 2 and stats.delivered == 2 and stats.invalid == 1
    assert stats.unexplained == 0
    assert [type(e) for e in errors] == [EventRejected]
    assert not spool_dir.exists()  # nothing left on disk


def test_before_send_modifies_or_drops_before_validation(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def hook(event: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(dict(event))
        if event["properties"].get("path") == "/health":
            return None  # drop
        if event["properties"].get("path") == "relative":
            event["properties"]["path"] = "/fixed"  # the hook runs before validation
        return event

    with Tracker.disabled(source="unit", before_send=hook) as tracker:
        assert tracker.track("page_view", "u-1", path="/health") is None
        fixed = tracker.track("page_view", "u-1", path="relative")
        with tracker.user("u-9", session_id="s-1"):
            kept = tracker.track("page_view", path="/x")
        recorded = tracker.recorded()
        stats = tracker.stats()
    assert [s["user_id"] for s in seen] == ["u-1", "u-1", "u-9"]
    assert [str(e.event_id) for e in recorded] == [fixed, kept]
    assert recorded[0].properties.path == "/fixed"  # type: ignore[attr-defined]
    assert stats.filtered == 1 and stats.tracked == 2 and stats.unexplained == 0


def test_a_before_send_that_raises_rejects_the_event_not_the_caller() -> None:
    errors: list[TrackingError] = []

    def hook(event: dict[str, Any]) -> dict[str, Any] | None:
        raise KeyError("oops")

    with Tracker.disabled(source="unit", before_send=hook, on_error=errors.append) as tracker:
        assert tracker.track("page_view", "u-1", path="/x") is None
    assert isinstance(errors[0], EventRejected) and errors[0].fields == ["<before_send>"]


def test_per_type_sampling_keeps_the_given_fraction() -> None:
    with Tracker.disabled(source="unit", sample_rates={"page_view": 0.1, "login": 0.0}) as tr:
        for i in range(5_000):
            tr.track("page_view", f"u-{i % 50}", path="/x")
            tr.track("login", f"u-{i % 50}", method="password")
            tr.track("logout", f"u-{i % 50}")
        by_type: dict[str, int] = {}
        for event in tr.recorded():
            by_type[event.type] = by_type.get(event.type, 0) + 1
        stats = tr.stats()
    assert by_type.get("login", 0) == 0 and by_type["logout"] == 5_000
    assert 350 <= by_type["page_view"] <= 650  # 10 % of 5,000 (binomial, sd 21)
    assert stats.filtered == 10_000 - by_type["page_view"]
    assert stats.unexplained == 0


def test_filtered_is_exported_to_prometheus() -> None:
    """Sampled-out and hook-dropped calls are a counter like the others, not only in stats()."""
    with Tracker.disabled(
        source="prom-filtered",
        prometheus=True,
        sample_rates={"task_created": 0.0},
        before_send=lambda event: None if event["properties"].get("path") == "/drop" else event,
    ) as tracker:
        tracker.track("task_created", "u-1", task_id="t-1", priority="high")
        tracker.track("page_view", "u-1", path="/drop")
        tracker.track("page_view", "u-1", path="/kept")
        text = generate_latest(REGISTRY).decode()
    assert 'brainstream_sdk_filtered_total{source="prom-filtered"} 2.0' in text
    assert 'brainstream_sdk_tracked_total{source="prom-filtered"} 1.0' in text
