"""Reading the accepted stream back in tests, and folding it the way a fenced consumer does."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import Consumer, KafkaError, TopicPartition

from schemas.accepted import AcceptedBatch, decode_batch
from schemas.config import KafkaSettings

Coordinate = tuple[int, int]
"""(source partition, source offset)."""
Content = tuple[str, str, int, int]
"""(type, user_id, occurred_at_us, schema_version) of one forwarded event."""


def read_accepted(kafka: KafkaSettings, topic: str, timeout: float = 30.0) -> list[AcceptedBatch]:
    """Every record of ``topic`` up to its current high watermarks, partition by partition in
    log order; each record's partition must be its source partition."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    out: list[AcceptedBatch] = []
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            position, deadline = low, time.monotonic() + timeout
            while position < high:
                msgs = consumer.consume(500, 0.2)
                assert time.monotonic() < deadline, f"{topic}[{p}] stalled at {position}/{high}"
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        assert err.code() == KafkaError._PARTITION_EOF, err
                        position = max(position, msg.offset())
                        continue
                    batch = decode_batch(msg.value())
                    assert batch.partition == p == msg.partition()
                    out.append(batch)
                    position = msg.offset() + 1
            consumer.unassign()
    finally:
        consumer.close()
    return out


@dataclass
class Folded:
    """What a consumer fenced by source offset counts from the stream."""

    counted: dict[Coordinate, Content] = field(default_factory=dict)
    skipped: int = 0
    """Events below the fence (forwarded again after a crash, or by a zombie)."""
    records: int = 0


def fold(batches: list[AcceptedBatch]) -> Folded:
    """Apply ``batches`` in order behind a per-partition fence (the highest ``last_offset``
    applied), then check that every record, fenced or not, says the same as what was counted
    over its whole range: nothing re-forwarded differs, nothing is missing from it."""
    folded = Folded(records=len(batches))
    fences: dict[int, int] = {}
    for batch in batches:
        fence = fences.get(batch.partition, -1)
        fresh = batch.after(fence)
        folded.skipped += len(batch) - len(fresh)
        for i, offset in enumerate(fresh.offsets):
            key = (batch.partition, offset)
            assert key not in folded.counted, f"{key} counted twice"
            folded.counted[key] = _content(fresh, i)
        fences[batch.partition] = max(fence, batch.last_offset)
    for batch in batches:
        said = {(batch.partition, o): _content(batch, i) for i, o in enumerate(batch.offsets)}
        expected = {
            k: v
            for k, v in folded.counted.items()
            if k[0] == batch.partition and batch.first_offset <= k[1] <= batch.last_offset
        }
        assert said == expected, (
            f"{batch.partition}@{batch.first_offset}..{batch.last_offset} disagrees"
        )
    return folded


def _content(batch: AcceptedBatch, i: int) -> Content:
    return (batch.types[i], batch.user_ids[i], batch.occurred_at_us[i], batch.schema_versions[i])


def stored(conninfo: str) -> dict[Coordinate, Content]:
    """The raw table's rows by their lineage coordinate, as the stream should describe them."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT kafka_partition, kafka_offset, event_type, user_id,"
            " (extract(epoch FROM occurred_at) * 1000000)::bigint, schema_version"
            " FROM analytics_events"
        ).fetchall()
    return {(int(p), int(o)): (str(t), str(u), int(us), int(v)) for p, o, t, u, us, v in rows}  # type: ignore[call-overload]


def processed_ranges(batches: list[AcceptedBatch]) -> dict[int, tuple[int, int]]:
    """Per source partition, the lowest first_offset and highest last_offset forwarded."""
    out: dict[int, tuple[int, int]] = {}
    for b in batches:
        lo, hi = out.get(b.partition, (b.first_offset, b.last_offset))
        out[b.partition] = (min(lo, b.first_offset), max(hi, b.last_offset))
    return out
