"""The sink's consume-loop contract, on the in-memory broker and on the real one.

The same suite runs twice: against :class:`eventlog.local.LocalBroker` (a unit test, no
services) and against the real Kafka broker (integration). The sink gets its clients from the
broker's factories, wrapped in a spy that records commits, pauses and rebalance callbacks in one
ordered log, and writes into a recording store that can be slowed down or taken down. Postgres
itself is not the subject here (the sink's database path has its own integration tests).

- offsets are committed only after the transaction that stored their records;
- a revoke finishes the batch in flight: it is stored and its offsets committed inside the
  revoke callback, so the partitions' next owner does not read it again;
- while the database is down the consumer pauses its partitions, and resumes after.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from eventlog.clients import consumer_conf
from eventlog.local import LocalBroker
from schemas.config import TopicSettings
from sinks.config import SinkConfig
from sinks.consumer import Sink
from sinks.records import Row
from sinks.writer import WriteResult
from tests.fixtures.samples import sample_event
from tests.sinks.conftest import Record, event_records, produce, wait_for

Entry = tuple[str, Any]


@dataclass
class Spy:
    """A consumer that logs what the loop does with it, then delegates."""

    inner: Any
    log: list[Entry]
    revoking: threading.Event = field(default_factory=threading.Event)

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        def revoke(consumer: Any, partitions: list[TopicPartition]) -> None:
            self.log.append(("revoke-start", {tp.partition for tp in partitions}))
            self.revoking.set()
            on_revoke(consumer, partitions)
            self.log.append(("revoke-end", {tp.partition for tp in partitions}))

        self.inner.subscribe(topics, on_assign=on_assign, on_revoke=revoke, on_lost=on_lost)

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        done = self.inner.commit(offsets=offsets, asynchronous=asynchronous)
        self.log.append(("commit", {tp.partition: tp.offset for tp in offsets}))
        return done

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.log.append(("pause", {tp.partition for tp in partitions}))
        self.inner.pause(partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.log.append(("resume", {tp.partition for tp in partitions}))
        self.inner.resume(partitions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RecordingStore:
    """Stores rows in memory; ``gate`` holds the first write until it is set, ``down_for``
    fails every write with a connection fault for that long after the first attempt."""

    def __init__(self, log: list[Entry], *, down_for: float = 0.0) -> None:
        self.log = log
        self.rows: list[Row] = []
        self.batches: list[set[tuple[int, int]]] = []
        """The (partition, offset) of each write's rows, attempted or not."""
        self.gate: threading.Event | None = None
        self.down_for = down_for
        self._first_attempt: float | None = None

    def write(self, rows: list[Row]) -> WriteResult:
        now = time.monotonic()
        self._first_attempt = self._first_attempt or now
        self.log.append(("write-start", len(rows)))
        self.batches.append({(r.kafka_partition, r.kafka_offset) for r in rows})
        if self.gate is not None:
            gate, self.gate = self.gate, None
            assert gate.wait(60), "the gate was never opened"
        if now - self._first_attempt < self.down_for:
            raise psycopg.OperationalError("the database is down (test)")
        self.rows += rows
        stored: dict[int, int] = {}
        for r in rows:
            stored[r.kafka_partition] = max(stored.get(r.kafka_partition, -1), r.kafka_offset)
        self.log.append(("write", stored))
        return WriteResult(staged=len(rows), inserted=len(rows), accepted=list(rows))

    def reset(self) -> None:
        self.log.append(("reset", None))

    def close(self) -> None:
        pass


@dataclass
class Broker:
    """One broker under the suite: its clients' factories and how to produce and join."""

    kind: str
    kafka_conf: dict[str, Any]
    topics: TopicSettings
    consumer_factory: Callable[[dict[str, Any]], Any]
    producer_factory: Callable[[dict[str, Any]], Any]
    produce: Callable[[list[Record]], None]

    def sink(
        self,
        store: RecordingStore,
        log: list[Entry],
        spies: list[Spy],
        batch: int = 1_000,
        within: float = 0.2,
    ) -> Sink:
        def consumer(conf: dict[str, Any]) -> Spy:
            spies.append(Spy(self.consumer_factory(conf), log))
            return spies[-1]

        config = SinkConfig(
            group_id=f"g-{uuid.uuid4().hex[:8]}",
            batch_max_records=batch,
            batch_max_seconds=within,
            session_timeout_ms=6_000,
            retry_initial_seconds=0.01,
            retry_max_seconds=0.05,
        )
        return Sink(
            config,
            self.kafka_conf,
            self.topics,
            "unused: the store is given",
            consumer_factory=consumer,
            producer_factory=self.producer_factory,
            store=store,
        )


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def broker(request: pytest.FixtureRequest) -> Broker:
    if request.param == "kafka":
        kafka = request.getfixturevalue("kafka_settings")
        topics: TopicSettings = request.getfixturevalue("topics")
        return Broker(
            "kafka",
            kafka.librdkafka(),
            topics,
            Consumer,
            Producer,
            lambda records: produce(kafka, topics.events, records),
        )
    memory = LocalBroker()
    names = TopicSettings(
        events="m.events", dlq="m.dlq", accepted="m.accepted", erasures="m.erasures"
    )
    for topic, partitions in ((names.events, 3), (names.accepted, 3), (names.dlq, 1)):
        memory.create_topic(topic, partitions)

    def put(records: list[Record]) -> None:
        for key, value, headers in records:
            memory.produce(names.events, value, key, headers=headers)  # type: ignore[arg-type]

    return Broker("memory", {}, names, memory.consumer, memory.producer, put)


def _events(n: int) -> list[Record]:
    return event_records([sample_event("login", user_id=f"user-{i % 7}") for i in range(n)])


@contextmanager
def running(sink: Sink) -> Iterator[None]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            sink.run(stop)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=target, name="sink-under-contract")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "sink did not stop"
    assert not errors, errors


def _committed(log: list[Entry]) -> int:
    """Records covered by the commits logged so far (one past each partition's last)."""
    ends: dict[int, int] = {}
    for kind, what in list(log):
        if kind == "commit":
            ends.update(what)
    return sum(ends.values())


def _assert_commits_follow_writes(log: list[Entry]) -> None:
    """Every committed offset lies at most one past what a finished write had stored."""
    stored: dict[int, int] = {}
    commits = 0
    for kind, what in log:
        if kind == "write":
            for partition, last in what.items():
                stored[partition] = max(stored.get(partition, -1), last)
        elif kind == "commit":
            commits += 1
            for partition, offset in what.items():
                assert offset <= stored.get(partition, -1) + 1, (partition, offset, stored)
    assert commits > 0


def _stored_once(store: RecordingStore, n: int) -> None:
    coordinates = [(r.kafka_partition, r.kafka_offset) for r in store.rows]
    assert len(coordinates) == len(set(coordinates)) == n


def test_offsets_are_committed_only_after_their_batch_is_stored(broker: Broker) -> None:
    log: list[Entry] = []
    store = RecordingStore(log)
    broker.produce(_events(60))
    with running(broker.sink(store, log, [])):
        wait_for(lambda: _committed(log) == 60, timeout=90, what="every offset committed")
    _stored_once(store, 60)
    _assert_commits_follow_writes(log)


def test_a_revoke_finishes_the_batch_in_flight(broker: Broker) -> None:
    log: list[Entry] = []
    store = RecordingStore(log)
    spies: list[Spy] = []
    gate = store.gate = threading.Event()
    broker.produce(_events(40))
    sink = broker.sink(store, log, spies, within=1.0)
    taken: list[Any] = []
    stop_second = threading.Event()

    def second_member() -> None:  # joins the sink's group: a rebalance revokes the sink's share
        group = sink.config.group_id
        conf = consumer_conf(broker.kafka_conf, group, extra={"session.timeout.ms": 6_000})
        consumer = broker.consumer_factory(conf)
        consumer.subscribe([broker.topics.events])
        while not stop_second.is_set():
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                taken.append(msg)
        consumer.close()

    with running(sink):
        wait_for(lambda: bool(store.batches), timeout=90, what="a batch in flight")
        joiner = threading.Thread(target=second_member, name="second-member")
        joiner.start()
        try:
            # the write finishes only once the revoke has begun: the batch is in flight then
            assert spies[0].revoking.wait(60), "no revoke"
            gate.set()
            wait_for(lambda: any(k == "revoke-end" for k, _ in log), timeout=60, what="revoke")
            time.sleep(1.0)  # the second member reads whatever its share still holds
        finally:
            stop_second.set()
            joiner.join(30)
    start = next(i for i, (k, _) in enumerate(log) if k == "revoke-start")
    end = next(i for i, (k, _) in enumerate(log) if k == "revoke-end")
    in_flight = store.batches[0]
    assert any(kind == "write" for kind, _ in log[start:end])  # stored inside the callback
    committed: dict[int, int] = {}
    for kind, what in log[start:end]:
        if kind == "commit":
            committed.update(what)
    assert all(committed.get(p, -1) > o for p, o in in_flight)  # and committed there
    # the partitions' next owner reads nothing of it again
    assert not {(m.partition(), m.offset()) for m in taken} & in_flight
    coordinates = [(r.kafka_partition, r.kafka_offset) for r in store.rows]
    assert len(coordinates) == len(set(coordinates)) and in_flight <= set(coordinates)
    _assert_commits_follow_writes(log)


def test_the_consumer_pauses_while_the_database_is_down(broker: Broker) -> None:
    log: list[Entry] = []
    store = RecordingStore(log, down_for=2.0)
    broker.produce(_events(30))
    # the loop pauses once the next batch waits behind the one the database refuses
    with running(broker.sink(store, log, [], batch=10)):
        wait_for(lambda: _committed(log) == 30, timeout=90, what="every offset committed")
    kinds = [k for k, _ in log]
    paused = kinds.index("pause")
    first_write = kinds.index("write")
    assert "reset" in kinds[:paused]  # a connection fault came first
    assert paused < first_write < kinds.index("resume")
    assert log[paused][1] == log[kinds.index("resume")][1] != set()
    _stored_once(store, 30)
    _assert_commits_follow_writes(log)
