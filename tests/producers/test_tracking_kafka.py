"""On the real broker: events from threads and asyncio tasks arrive with the right user,
invalid ones never reach the topic and each is reported once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from producers import EventRejected, Tracker, TrackingError
from schemas.config import KafkaSettings, TopicSettings
from tests.producers.topic_reader import counts_by_id, read_topic

pytestmark = pytest.mark.integration


def make(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path, errors: list[TrackingError]
) -> Tracker:
    return Tracker(
        kafka, topic=topics.events, source="it", spool_dir=tmp_path, on_error=errors.append
    )


def test_threads_and_tasks_stamp_the_right_user(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    errors: list[TrackingError] = []
    tr = make(kafka_settings, topics, tmp_path, errors)

    def thread_work(i: int) -> None:
        with tr.user(f"thread-{i}", session_id=f"s-{i}"):
            for j in range(200):
                tr.track("task_created", task_id=f"thread-{i}-{j}")
                if j % 50 == 0:
                    tr.track("task_created", task_id="has spaces")  # invalid

    async def task_work(i: int) -> None:
        with tr.user(f"task-{i}"):
            for j in range(100):
                tr.track("task_deleted", task_id=f"task-{i}-{j}")
                await asyncio.sleep(0)

    async def all_tasks() -> int:
        await asyncio.gather(*(task_work(i) for i in range(10)))
        return await tr.aflush(30)

    threads = [threading.Thread(target=thread_work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    left = asyncio.run(all_tasks())
    for t in threads:
        t.join()
    stats = tr.close(30)
    assert left == 0 or stats.delivered == 2200
    assert stats.tracked == stats.delivered == 2200 and stats.invalid == 24
    assert stats.unexplained == 0

    records = read_topic(kafka_settings, topics.events, 2200)
    assert len(records) == 2200 and set(counts_by_id(records).values()) == {1}
    for r in records:
        owner = r.prop("task_id").rsplit("-", 1)[0]
        assert r.event.user_id == owner and r.key == owner.encode()
        if owner.startswith("thread-"):
            assert r.headers["bs.session_id"] == b"s-" + owner.split("-")[1].encode()
    rejected = [e for e in errors if isinstance(e, EventRejected)]
    assert len(rejected) == 24 and {tuple(e.fields) for e in rejected} == {("properties.task_id",)}


def test_event_objects_and_explicit_timestamps_take_the_model_path(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    import schemas

    errors: list[TrackingError] = []
    with make(kafka_settings, topics, tmp_path, errors) as tr:
        event = schemas.Login(user_id="u-5", source="other", properties={"method": "sso"})
        assert tr.track(event) == str(event.event_id)
        when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        explicit = tr.track("search", "u-6", occurred_at=when, query_length=1, result_count=0)
        tr.flush(30)
    records = {str(r.event.event_id): r.event for r in read_topic(kafka_settings, topics.events, 2)}
    assert records[str(event.event_id)] == event
    assert records[str(explicit)].occurred_at == when and not errors
