"""An in-memory broker with the consumer and producer surface the sink uses, for unit tests of
consume loops (as arroyo's ``LocalBroker``): no network, no JVM, every step observable.

What it models, because the loops' guarantees depend on it: topics of partitions of records with
offsets; consumer groups whose members share the partitions of their subscription (range
assignment, eager: a join or a leave revokes every member's partitions, and the new shares are
handed out only once every member has run its revoke, as a JoinGroup round waits for all);
rebalance callbacks (``on_revoke`` before ``on_assign``) run inside ``poll``/``consume`` as
librdkafka runs them; positions starting at the group's committed offset (else the log start);
``pause``/``resume``; synchronous commits that fail for a partition the member no longer owns.
What it does not model: replication, transactions, time lookups, delivery failures.

Factories match ``confluent_kafka.Consumer`` and ``Producer``: ``broker.consumer(conf)``,
``broker.producer(conf)`` (``group.id`` is read from ``conf``; everything else is ignored).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

Callback = Callable[[Any, list[TopicPartition]], None]
DeliveryCallback = Callable[[KafkaError | None, Message], None]


@dataclass(slots=True)
class _PartitionMeta:
    id: int


@dataclass(slots=True)
class _TopicMeta:
    partitions: dict[int, _PartitionMeta]
    error: KafkaError | None = None


@dataclass(slots=True)
class _Metadata:
    topics: dict[str, _TopicMeta]


@dataclass(slots=True)
class _Group:
    members: list[LocalConsumer] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    shares: dict[int, list[tuple[str, int]]] | None = None
    """The assignment of the round in progress (member id -> partitions), handed out once no
    member still has a revoke to run."""
    revoking: set[int] = field(default_factory=set)
    """Members that must still revoke their partitions before the round's shares are given."""


class LocalBroker:
    """Topics, consumer groups and committed offsets, shared by its consumers and producers."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._logs: dict[str, list[list[Message]]] = {}
        self._groups: dict[str, _Group] = {}
        self._clock = clock
        self.changed = threading.Condition()
        """Notified on every produce, commit and membership change."""

    # -- topics --------------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int) -> None:
        with self.changed:
            self._logs.setdefault(name, [[] for _ in range(partitions)])

    def partitions(self, topic: str) -> int:
        return len(self._logs.get(topic, []))

    def records(self, topic: str, partition: int | None = None) -> list[Message]:
        """Every record of ``topic`` (of one partition, or of all in partition order)."""
        with self.changed:
            logs = self._logs[topic]
            chosen = logs if partition is None else [logs[partition]]
            return [m for log in chosen for m in log]

    def end_offset(self, topic: str, partition: int) -> int:
        with self.changed:
            return len(self._logs[topic][partition])

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes | str | None]] | None = None,
    ) -> Message:
        """Append one record; without ``partition``, by key hash (or to partition 0)."""
        with self.changed:
            logs = self._logs.get(topic)
            if logs is None:
                raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
            if partition is None:
                partition = hash(key) % len(logs) if key is not None else 0
            if not 0 <= partition < len(logs):
                raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION))
            log = logs[partition]
            record = Message(
                topic=topic,
                partition=partition,
                offset=len(log),
                key=key,
                value=value,
                headers=list(headers) if headers else None,
                timestamp=(TIMESTAMP_CREATE_TIME, int(self._clock() * 1000)),
            )
            log.append(record)
            self.changed.notify_all()
            return record

    def metadata(self, topic: str | None) -> _Metadata:
        with self.changed:
            names = [topic] if topic is not None else list(self._logs)
            topics = {}
            for name in names:
                logs = self._logs.get(name)
                if logs is None:
                    topics[name] = _TopicMeta({}, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
                else:
                    topics[name] = _TopicMeta({p: _PartitionMeta(p) for p in range(len(logs))})
            return _Metadata(topics)

    # -- groups --------------------------------------------------------------------------------
    def committed(self, group: str) -> dict[tuple[str, int], int]:
        """The committed offsets of ``group``: (topic, partition) -> next offset to read."""
        with self.changed:
            return dict(self._group(group).committed)

    def _group(self, group: str) -> _Group:
        return self._groups.setdefault(group, _Group())

    def _join(self, member: LocalConsumer) -> None:
        with self.changed:
            self._group(member.group_id).members.append(member)
            self._rebalance(member.group_id)

    def _leave(self, member: LocalConsumer) -> None:
        with self.changed:
            group = self._group(member.group_id)
            if member in group.members:
                group.members.remove(member)
                self._rebalance(member.group_id)

    def _rebalance(self, group_id: str) -> None:
        """Eager range assignment: every member is revoked, then assigned its share anew."""
        members = self._group(group_id).members
        topics = sorted({t for m in members for t in m.subscription})
        shares: dict[int, list[tuple[str, int]]] = {id(m): [] for m in members}
        for topic in topics:
            subscribed = [m for m in members if topic in m.subscription]
            count = len(self._logs.get(topic, []))
            for index, member in enumerate(subscribed):
                per, extra = divmod(count, len(subscribed))
                start = index * per + min(index, extra)
                end = start + per + (1 if index < extra else 0)
                shares[id(member)] += [(topic, p) for p in range(start, end)]
        group = self._group(group_id)
        group.shares = shares
        group.revoking = {id(m) for m in members if m._assignment}
        self.changed.notify_all()

    def _revoked(self, member: LocalConsumer) -> None:
        with self.changed:
            self._group(member.group_id).revoking.discard(id(member))
            self.changed.notify_all()

    def _round(self, member: LocalConsumer) -> tuple[bool, list[tuple[str, int]] | None]:
        """(must ``member`` revoke now?, its new share once every member has revoked)."""
        group = self._group(member.group_id)
        if group.shares is None or id(member) not in group.shares:
            return False, None
        if id(member) in group.revoking:
            return True, None
        if group.revoking:
            return False, None
        return False, group.shares.pop(id(member))

    def _commit(self, member: LocalConsumer, offsets: dict[tuple[str, int], int]) -> None:
        with self.changed:
            self._group(member.group_id).committed.update(offsets)
            self.changed.notify_all()

    def _committed_or_start(self, group_id: str, key: tuple[str, int]) -> int:
        return self._group(group_id).committed.get(key, 0)

    def _fetch(self, key: tuple[str, int], position: int, limit: int) -> list[Message]:
        topic, partition = key
        return self._logs[topic][partition][position : position + limit]

    # -- client factories ----------------------------------------------------------------------
    def consumer(self, conf: dict[str, Any]) -> LocalConsumer:
        return LocalConsumer(self, conf)

    def producer(self, conf: dict[str, Any]) -> LocalProducer:
        return LocalProducer(self, conf)


class LocalConsumer:
    """The subset of ``confluent_kafka.Consumer`` a consume loop uses."""

    def __init__(self, broker: LocalBroker, conf: dict[str, Any]) -> None:
        self._broker = broker
        self.group_id: str = conf["group.id"]
        self.subscription: list[str] = []
        self._callbacks: dict[str, Callback | None] = {}
        self._assignment: dict[tuple[str, int], int] = {}
        """Owned partitions -> position (next offset to return)."""
        self._paused: set[tuple[str, int]] = set()
        self._closed = False

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callback | None = None,
        on_revoke: Callback | None = None,
        on_lost: Callback | None = None,
    ) -> None:
        self.subscription = list(topics)
        self._callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self._broker._join(self)

    def poll(self, timeout: float | None = None) -> Message | None:
        records = self.consume(1, timeout if timeout is not None else -1)
        return records[0] if records else None

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        deadline = time.monotonic() + (timeout if timeout >= 0 else 3600.0)
        broker = self._broker
        while True:
            self._serve_rebalance()
            with broker.changed:
                records: list[Message] = []
                for key, position in sorted(self._assignment.items()):
                    if key in self._paused or len(records) >= num_messages:
                        continue
                    fetched = broker._fetch(key, position, num_messages - len(records))
                    if fetched:
                        self._assignment[key] = position + len(fetched)
                        records += fetched
                if records:
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                broker.changed.wait(min(remaining, 0.05))

    def _serve_rebalance(self) -> None:
        """Run the rebalance callbacks here, in the caller's thread, as librdkafka does."""
        with self._broker.changed:
            revoke, new = self._broker._round(self)
        if revoke:
            revoked = [TopicPartition(t, p) for t, p in sorted(self._assignment)]
            if self._callbacks.get("revoke"):
                self._callbacks["revoke"](self, revoked)  # type: ignore[misc]
            self._assignment = {}
            self._broker._revoked(self)
            return
        if new is None:
            return
        with self._broker.changed:
            self._assignment = {
                key: self._broker._committed_or_start(self.group_id, key) for key in new
            }
            self._paused &= set(new)
        if self._callbacks.get("assign"):
            self._callbacks["assign"](self, [TopicPartition(t, p) for t, p in new])  # type: ignore[misc]

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self._assignment)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._paused -= {(tp.topic, tp.partition) for tp in partitions}

    def paused(self) -> set[tuple[str, int]]:
        return set(self._paused)

    def commit(
        self,
        message: Message | None = None,
        offsets: list[TopicPartition] | None = None,
        asynchronous: bool = True,
    ) -> list[TopicPartition]:
        """Commit ``offsets`` (or every position); raises ``KafkaException`` for a partition
        this member does not own (the generation moved on), committing none of them."""
        chosen = offsets or [TopicPartition(t, p, o) for (t, p), o in self._assignment.items()]
        keys = {(tp.topic, tp.partition): tp.offset for tp in chosen}
        if not keys.keys() <= self._assignment.keys():
            raise KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION))
        self._broker._commit(self, keys)
        return [TopicPartition(t, p, o) for (t, p), o in keys.items()]

    def committed(
        self, partitions: list[TopicPartition], timeout: float | None = None
    ) -> list[TopicPartition]:
        done = self._broker.committed(self.group_id)
        return [
            TopicPartition(tp.topic, tp.partition, done.get((tp.topic, tp.partition), -1001))
            for tp in partitions
        ]

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> _Metadata:
        return self._broker.metadata(topic)

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        return 0, self._broker.end_offset(partition.topic, partition.partition)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._assignment and self._callbacks.get("revoke"):
            self._callbacks["revoke"](self, self.assignment())  # type: ignore[misc]
        self._assignment = {}
        self._broker._leave(self)


class LocalProducer:
    """The subset of ``confluent_kafka.Producer`` the sink's forwarder and DLQ use: every
    record is acknowledged at the next ``poll``/``flush``."""

    def __init__(self, broker: LocalBroker, conf: dict[str, Any]) -> None:
        self._broker = broker
        self._unacked: list[tuple[DeliveryCallback | None, Message]] = []
        self._lock = threading.Lock()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
        headers: Sequence[tuple[str, bytes | str | None]] | None = None,
        **_: Any,
    ) -> None:
        record = self._broker.produce(
            topic, value, key, partition=None if partition < 0 else partition, headers=headers
        )
        with self._lock:
            self._unacked.append((on_delivery, record))

    def poll(self, timeout: float = 0) -> int:
        with self._lock:
            acked, self._unacked = self._unacked, []
        for callback, record in acked:
            if callback is not None:
                callback(None, record)
        return len(acked)

    def flush(self, timeout: float = -1) -> int:
        self.poll(0)
        return 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> _Metadata:
        return self._broker.metadata(topic)
