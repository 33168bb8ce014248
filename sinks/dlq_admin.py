"""Operator tools for the dead-letter topic: inspect what is there, re-submit what is fixed.

Both skip the dead letters of erased users (``erased``: the users of the compacted erasures
topic and of ``erased_users``; a letter belongs to the user its key or its ``user_id`` names):
inspect never shows them and replay never re-publishes them. They age out of the topic with its
retention (``BRAINSTREAM_TOPIC_DLQ_RETENTION_DAYS``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

import schemas
from eventlog.clients import consumer_conf, producer_conf
from schemas import InvalidEvent
from schemas.topics import DLQ_PREFIX
from sinks.dlq import is_dlq_header

REPLAY_GROUP = "brainstream-dlq-replay"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value_size: int
    info: dict[str, str]
    """The ``bs.dlq.*`` headers without their prefix (topic, offset, stage, errors, ...)."""

    @property
    def errors(self) -> list[dict[str, str]]:
        parsed: list[dict[str, str]] = json.loads(self.info.get("errors", "[]"))
        return parsed


@dataclass(slots=True)
class ResubmitReport:
    read: int = 0
    resubmitted: int = 0
    still_invalid: int = 0
    filtered_out: int = 0
    erased: int = 0
    """Dead letters of erased users: never re-published."""
    details: list[str] = field(default_factory=list)


def dlq_info(headers: list[tuple[str, Any]] | None) -> dict[str, str]:
    return {
        name.removeprefix(DLQ_PREFIX): (v.decode() if isinstance(v, bytes) else str(v))
        for name, v in headers or []
        if is_dlq_header(name)
    }


def inspect(
    kafka_conf: dict[str, Any],
    topic: str,
    limit: int = 100,
    *,
    erased: AbstractSet[str] = frozenset(),
) -> list[DeadLetter]:
    """The first ``limit`` dead letters (from the beginning of the topic), but none of an
    ``erased`` user."""
    found: list[DeadLetter] = []
    for msg in _read(kafka_conf, topic, group=f"brainstream-dlq-inspect-{uuid.uuid4().hex[:8]}"):
        if erased and of_erased_user(msg, erased):
            continue
        value = msg.value() or b""
        found.append(
            DeadLetter(
                partition=msg.partition() or 0,
                offset=msg.offset() or 0,
                key=_bytes(msg.key()),
                value_size=len(value),
                info=dlq_info(_headers(msg)),
            )
        )
        if len(found) >= limit:
            break
    return found


def resubmit(
    kafka_conf: dict[str, Any],
    dlq_topic: str,
    events_topic: str,
    *,
    stages: set[str] | None = None,
    validate: bool = True,
    dry_run: bool = False,
    group: str = REPLAY_GROUP,
    erased: AbstractSet[str] = frozenset(),
) -> ResubmitReport:
    """Re-produce dead letters (original key, value, headers) to the events topic, once each.

    Raises:
        RuntimeError: the broker did not acknowledge every re-submitted record (the group's
            offsets are then left where they were, so a rerun re-submits them).

    Progress is kept in consumer group ``group``; with ``validate`` only records that now pass
    the contract are re-submitted (the others stay in the DLQ, counted). Letters of an
    ``erased`` user are never re-submitted (counted in ``erased``).
    """
    report = ResubmitReport()
    producer = Producer(producer_conf(kafka_conf))
    consumer_holder: list[Consumer] = []
    for msg in _read(kafka_conf, dlq_topic, group=group, from_committed=True, keep=consumer_holder):
        report.read += 1
        if erased and of_erased_user(msg, erased):
            report.erased += 1
            continue
        info = dlq_info(_headers(msg))
        if stages is not None and info.get("stage") not in stages:
            report.filtered_out += 1
            continue
        if validate and not _valid(msg.value()):
            report.still_invalid += 1
            continue
        report.resubmitted += 1
        if not dry_run:
            headers = [(k, v) for k, v in _headers(msg) if not is_dlq_header(k)]
            producer.produce(events_topic, msg.value(), msg.key(), headers=headers)
            producer.poll(0)
    if producer.flush(30.0):
        raise RuntimeError("re-submitted records were not all acknowledged; offsets not moved")
    if consumer_holder and not dry_run:
        consumer = consumer_holder[0]
        if consumer.assignment() and report.read:
            consumer.commit(asynchronous=False)
    for consumer in consumer_holder:
        consumer.close()
    return report


def of_erased_user(msg: Message, erased: AbstractSet[str]) -> bool:
    """Whether the record's key or its value's ``user_id`` names a user in ``erased``."""
    key = msg.key()
    if key is not None:
        user = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if user in erased:
            return True
    try:
        doc = orjson.loads(msg.value() or b"")
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and doc.get("user_id") in erased


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _headers(msg: Message) -> list[tuple[str, Any]]:
    raw = msg.headers() or []
    return list(raw.items()) if isinstance(raw, dict) else list(raw)


def _valid(value: bytes | None) -> bool:
    try:
        schemas.decode(value)
    except InvalidEvent:
        return False
    return True


def _read(
    kafka_conf: dict[str, Any],
    topic: str,
    *,
    group: str,
    from_committed: bool = False,
    keep: list[Consumer] | None = None,
) -> Iterator[Message]:
    """Every record of ``topic`` up to the current high watermarks, then stop."""
    consumer = Consumer(consumer_conf(kafka_conf, group, offset_reset=None, store_offsets=True))
    if keep is not None:
        keep.append(consumer)
    metadata = consumer.list_topics(topic, timeout=30)
    parts = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
    starts = consumer.committed(parts, timeout=30) if from_committed else parts
    todo: dict[int, int] = {}
    assign: list[TopicPartition] = []
    for tp in starts:
        start = tp.offset if from_committed and tp.offset >= 0 else OFFSET_BEGINNING
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=30)
        if high > max(low, start if start >= 0 else low):
            todo[tp.partition] = high
            assign.append(TopicPartition(topic, tp.partition, start))
    consumer.assign(assign)
    try:
        idle = 0
        while todo and idle < 3:
            msg = consumer.poll(2.0)
            if msg is None or msg.error() is not None:
                idle += 1
                _drop_caught_up(consumer, topic, todo)
                continue
            idle = 0
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            if offset + 1 >= todo.get(partition, 0):
                todo.pop(partition, None)
            yield msg
    finally:
        if keep is None:
            consumer.close()


def _drop_caught_up(consumer: Consumer, topic: str, todo: dict[int, int]) -> None:
    # The high watermark may point past a transaction marker that is never delivered.
    positions = consumer.position([TopicPartition(topic, p) for p in todo])
    for tp in positions:
        if tp.offset >= todo[tp.partition]:
            todo.pop(tp.partition, None)
