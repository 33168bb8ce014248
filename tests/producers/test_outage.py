"""A broker outage of more than 30 s while the host keeps tracking, on a PRIVATE Kafka:
``track()`` never raises and stays in microseconds, and after the broker is back every
event is in the topic exactly once (counted by event_id)."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from brainstream import dev
from brainstream.topic_admin import ensure_topics
from producers import Tracker, TrackingError
from schemas.config import KafkaSettings, TopicSettings
from tests.fixtures.services import TEST_DEV_DIR
from tests.producers.topic_reader import counts_by_id, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 32.0
RATE = 1000  # events per second while tracking


@pytest.fixture(scope="module")
def private_kafka() -> Iterator[dev.DevServices]:
    # Beside the shared test services (not in pytest's 0700 temp dirs, which the OS user
    # Postgres runs as cannot enter): its own ports, stopped and deleted at the end.
    root = TEST_DEV_DIR.parent / f"sdk-outage-{uuid.uuid4().hex[:8]}"
    try:
        yield dev.up(root, log=lambda _msg: None)
    finally:
        dev.down(root, log=lambda _msg: None)
        shutil.rmtree(root, ignore_errors=True)


def paced(tracker: Tracker, until: float, timings: list[int], ids: list[str | None]) -> None:
    """Track ``RATE`` events a second until ``until``, timing every call."""
    clock = time.perf_counter_ns
    i = len(ids)
    start = time.monotonic()
    while (now := time.monotonic()) < until:
        due = int((now - start) * RATE)
        while len(ids) - i < due:
            t0 = clock()
            ids.append(tracker.track("page_view", f"user-{len(ids) % 50}", path=f"/p/{len(ids)}"))
            timings.append(clock() - t0)
        time.sleep(0.002)


def test_outage_loses_nothing_and_duplicates_nothing(
    private_kafka: dev.DevServices, tmp_path: Path
) -> None:
    kafka = KafkaSettings(bootstrap_servers=private_kafka.kafka_bootstrap)
    names = TopicSettings(events="outage.events", events_partitions=3)
    ensure_topics(kafka, names)
    errors: list[TrackingError] = []
    tracker = Tracker(
        kafka,
        topic=names.events,
        source="outage",
        spool_dir=tmp_path,
        delivery_timeout_ms=5000,
        queue_max_messages=4000,  # small, so the queue-full path is exercised too
        resend_interval_seconds=0.5,
        on_error=errors.append,
    )
    ids: list[str | None] = []
    before: list[int] = []
    during: list[int] = []
    after: list[int] = []

    paced(tracker, time.monotonic() + 3, before, ids)
    dev.stop_kafka(private_kafka.dev_dir)
    down_at = time.monotonic()
    paced(tracker, down_at + OUTAGE_S, during, ids)
    restart = threading.Thread(
        target=dev.start_kafka, args=(private_kafka.dev_dir,), kwargs={"log": lambda _m: None}
    )
    restart.start()
    paced(tracker, time.monotonic() + 5, during, ids)  # still tracking while it starts
    restart.join()
    assert time.monotonic() - down_at >= 30
    paced(tracker, time.monotonic() + 3, after, ids)

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        stats = tracker.stats()
        if not stats.in_spool and not stats.in_flight:
            break
        time.sleep(0.5)
    stats = tracker.close(30)

    assert None not in ids
    assert stats.spooled > 0 and stats.resent > 0  # the outage really went through the spool
    assert stats.tracked == len(ids) == stats.delivered and stats.dropped == 0
    assert stats.unexplained == 0
    during.sort()
    p99_us = during[int(len(during) * 0.99)] / 1000
    print(  # the figures the README quotes; shown with pytest -s
        f"outage: {len(ids)} tracked, {len(during)} during the outage, p50 "
        f"{during[len(during) // 2] / 1000:.1f} us, p99 {p99_us:.1f} us, max "
        f"{during[-1] / 1000:.0f} us; {stats.spooled} spooled, {stats.resent} re-sent"
    )
    assert p99_us < 1000, f"p99 of track() during the outage: {p99_us:.0f} us"
    assert errors  # the outage was reported (in batches)

    counts = counts_by_id(read_topic(kafka, names.events, len(ids), timeout=120))
    assert set(counts) == set(ids)
    duplicated = {k: v for k, v in counts.items() if v != 1}
    assert not duplicated, f"{len(duplicated)} events more than once"
