"""The raw-event sink loop: consume a batch, write it in one transaction, then move offsets.

Order per batch: decode -> write rows (one DB transaction, committed) -> forward what the batch
stored to the accepted stream and wait for the acks (:mod:`sinks.forward`) -> produce and flush
dead letters -> commit offsets. A crash anywhere before the offset commit redelivers the batch:
ON CONFLICT DO NOTHING makes the rewrite harmless, and the forwarding rule (a row is forwarded
by the record whose coordinate it carries) forwards the same content again, which a consumer's
offset fence skips. Batches overlap: the next one is decoded
while the writer thread writes the last and is queued behind it, so the writer goes from one
transaction to the next without waiting for the main thread; at most two batches are pending.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from eventlog.backoff import delays
from eventlog.clients import consumer_conf
from eventlog.offsets import (
    TopicPartitionKey,
    is_fatal,
    next_offsets,
    offset_ranges,
    without_partitions,
)
from eventlog.runtime import runtime_tuning
from schemas.config import TopicSettings, access_refused, principal
from schemas.errors import BrainstreamError
from sinks.config import SinkConfig
from sinks.dlq import DeadLetters, DlqContext
from sinks.forward import Forwarder, ForwardStopped, accepted_batches
from sinks.metrics import SinkMetrics
from sinks.records import Rejection, Row, split
from sinks.writer import WriteResult, create_staging, require_privileges, write_batch

log = logging.getLogger(__name__)


@dataclass(slots=True)
class InFlight:
    """A batch handed to the writer thread, with what its completion needs."""

    batch: list[Message]
    rows: list[Row]
    rejected: list[Rejection]
    started: float
    future: Future[WriteResult] = field(default_factory=Future)


class SinkStopped(BrainstreamError):
    """Shutdown was requested while a batch could not be written; it is left uncommitted."""


class ConsumerFenced(BrainstreamError):
    """The sink's consumer reported a fatal error (librdkafka ``_FATAL``): it can never be used
    again. With static membership this happens when the group coordinator moves to another
    broker and the rejoin is refused as FENCED_INSTANCE_ID. The sink then builds a new
    consumer (:data:`RECREATE_LIMIT`); the batches in flight are left uncommitted and read
    again, which the idempotent store and the forwarding rule make harmless."""


RECREATE_LIMIT = (3, 600.0)
"""At most 3 new consumers in 600 s; beyond that the fatal error ends the sink. A real
duplicate of the ``group.instance.id`` (two live sinks configured alike) fences the other at
every join, so the pair would otherwise take turns forever."""


ClientFactory = Callable[[dict[str, Any]], Any]
"""Builds a Kafka client from its librdkafka configuration: ``confluent_kafka.Consumer`` /
``Producer``, or a test double with their surface (:class:`eventlog.local.LocalBroker`)."""


class BatchStore(Protocol):
    """Where the sink writes a batch: one transaction per call."""

    def write(self, rows: list[Row]) -> WriteResult:
        """Write ``rows`` in one committed transaction.

        Raises:
            psycopg.OperationalError: the database is unreachable or the transaction failed;
                nothing of the batch is committed, the sink retries it with backoff.
        """

    def reset(self) -> None:
        """Forget the connection after a fault (the next ``write`` reconnects)."""

    def close(self) -> None: ...


class PostgresStore:
    """The raw table in Postgres, through one connection opened on demand."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def write(self, rows: list[Row]) -> WriteResult:
        return write_batch(self._connection(), rows)

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._conninfo, connect_timeout=10)
            require_privileges(self._conn)
            create_staging(self._conn)
        return self._conn

    def reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self.reset()


def sink_consumer_conf(kafka_conf: dict[str, Any], config: SinkConfig) -> dict[str, Any]:
    """The sink's consumer: its group (static membership when ``instance_id`` is set), from the
    earliest offset, committing only what it stored."""
    extra = {
        "max.poll.interval.ms": config.max_poll_interval_ms,
        "session.timeout.ms": config.session_timeout_ms,
        "queued.max.messages.kbytes": 32_768,
    }
    return consumer_conf(kafka_conf, config.group_id, instance_id=config.instance_id, extra=extra)


class Sink:
    """Consumes ``topics.events`` into ``analytics_events`` until ``stop`` is set.

    The seams of its tests: ``consumer_factory`` and ``producer_factory`` build its Kafka
    clients (the consumer, the forwarder's and the DLQ's producers), ``store`` writes its
    batches (default: :class:`PostgresStore` on ``conninfo``)."""

    def __init__(
        self,
        config: SinkConfig,
        kafka_conf: dict[str, Any],
        topics: TopicSettings,
        conninfo: str,
        metrics: SinkMetrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        consumer_factory: ClientFactory = Consumer,
        producer_factory: ClientFactory = Producer,
        store: BatchStore | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or SinkMetrics()
        self._topics = topics
        self._clock = clock
        self._consumer_factory = consumer_factory
        self._consumer_conf = sink_consumer_conf(kafka_conf, config)
        self._consumer = consumer_factory(self._consumer_conf)
        self._recreated: collections.deque[float] = collections.deque()
        self._dlq = DeadLetters(
            kafka_conf,
            topics.dlq,
            DlqContext(config.group_id, config.name),
            producer_factory=producer_factory,
        )
        self._forwarder = Forwarder(
            kafka_conf,
            topics.accepted,
            retry_initial_seconds=config.retry_initial_seconds,
            retry_max_seconds=config.retry_max_seconds,
            producer_factory=producer_factory,
        )
        self._store: BatchStore = store if store is not None else PostgresStore(conninfo)
        self._assigned: set[TopicPartitionKey] = set()
        self._revoked: set[TopicPartitionKey] = set()
        self._batches = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sink-writer")
        self._pending: collections.deque[InFlight] = collections.deque()
        self._stop = threading.Event()
        self._lag_labels: set[TopicPartitionKey] = set()
        self.healthy_at = clock()
        self.database_up = True
        self.metrics.db_up.set(1)

    # -- lifecycle -----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop``; decoding of the next batch overlaps the write of the last."""
        self._stop = stop
        self._forwarder.check(self._partitions(self._topics.events))
        self._subscribe()
        try:
            with runtime_tuning(self.config.gc_gen0_threshold, self.config.switch_interval_seconds):
                while True:
                    try:
                        self._loop(stop)
                        break
                    except ConsumerFenced as exc:
                        self._recreate(exc)
        except SinkStopped:
            log.warning("stopped with an unwritten batch; it will be redelivered")
        finally:
            self._writer.shutdown(wait=True)
            self.close()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            batch = self._collect(stop)
            if batch:
                rows, rejected = split(batch, self.config)
                self._submit(InFlight(batch, rows, rejected, time.perf_counter()))
                while len(self._pending) > 1:  # the writer has the next batch queued meanwhile
                    self._settle(self._written())
            elif self._pending and self._pending[0].future.done():
                self._finish()
            self.healthy_at = self._clock()
        self._finish()  # graceful: the last batches are written and their offsets committed

    def _subscribe(self) -> None:
        self._consumer.subscribe(
            [self._topics.events],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _recreate(self, fenced: ConsumerFenced) -> None:
        """Replace a consumer that reported a fatal error, unless :data:`RECREATE_LIMIT` is
        reached.

        Raises:
            ConsumerFenced: the limit is reached.
        """
        count, window = RECREATE_LIMIT
        now = self._clock()
        while self._recreated and now - self._recreated[0] > window:
            self._recreated.popleft()
        if len(self._recreated) >= count:
            instance, hint = self.config.instance_id, ""
            if instance is not None:
                hint = f"; does another sink run with BRAINSTREAM_SINK_INSTANCE_ID={instance}?"
            raise ConsumerFenced(f"{fenced} ({count} new consumers within {window:.0f} s{hint})")
        self._recreated.append(now)
        log.warning("consumer unusable (%s); building a new one", fenced)
        self.metrics.consumer_recreated.inc()
        while self._pending:  # written or not, their offsets cannot be committed any more
            flight = self._pending.popleft()
            with contextlib.suppress(Exception):
                self._await(flight.future)
        with contextlib.suppress(KafkaException):
            self._consumer.close()
        self._assigned.clear()
        self._revoked.clear()
        self._consumer = self._consumer_factory(self._consumer_conf)
        self._subscribe()

    def close(self) -> None:
        self._consumer.close()
        self._dlq.close()
        self._forwarder.close()
        self._store.close()

    def health(self, stale_after: float = 60.0) -> dict[str, Any]:
        """Healthy while the loop turns and the database accepted the last write."""
        idle = self._clock() - self.healthy_at
        db_up = self.database_up
        limit = max(stale_after, 2 * self.config.batch_max_seconds)
        ok = idle < limit and db_up
        return {"ok": ok, "seconds_since_loop": round(idle, 3), "database_up": db_up}

    def _partitions(self, topic: str) -> int:
        meta = self._consumer.list_topics(topic, timeout=30).topics.get(topic)
        if meta is not None:
            who = principal(self._consumer_conf)
            denied = access_refused(meta.error, who, f"describing topic {topic!r}")
            if denied is not None:
                raise denied
        return len(meta.partitions) if meta is not None and meta.error is None else 0

    # -- rebalancing ---------------------------------------------------------------------------
    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned |= keys
        self._revoked -= keys

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._finish()  # commit the in-flight batches while their partitions are still ours
        keys = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= keys
        self._revoked |= keys
        for topic, partition in keys & self._lag_labels:
            self.metrics.lag.remove(topic, str(partition))
        self._lag_labels -= keys

    # -- collecting ----------------------------------------------------------------------------
    def _collect(self, stop: threading.Event) -> list[Message]:
        cfg = self.config
        records: list[Message] = []
        deadline: float | None = None
        while len(records) < cfg.batch_max_records and not stop.is_set():
            if deadline is None:  # poll returns as soon as one record is there
                first = self._consumer.poll(0.5)
                msgs = [first] if first is not None else []
            else:
                wait = max(0.0, deadline - self._clock())
                msgs = self._consumer.consume(cfg.batch_max_records - len(records), timeout=wait)
            self._revoked, revoked = set(), self._revoked
            records = without_partitions(records, revoked)
            records += [m for m in msgs if m.error() is None or self._usable(self._allowed(m))]
            if records and deadline is None:
                deadline = self._clock() + cfg.batch_max_seconds
            if deadline is None and not msgs:
                break
            if deadline is not None and self._clock() >= deadline:
                break
        return records

    def _allowed(self, msg: Message) -> Message:
        """``msg``, unless it is the authorizer's refusal (a topic or group ACL missing for
        this principal): then :class:`~schemas.config.KafkaAccessRefused` is raised, which
        ends the sink with its one line instead of a warning logged at every poll."""
        doing = f"reading topic {msg.topic() or self._topics.events!r}"
        doing += f" in consumer group {self._consumer_conf['group.id']!r}"
        denied = access_refused(msg.error(), principal(self._consumer_conf), doing)
        if denied is not None:
            raise denied
        return msg

    @staticmethod
    def _usable(msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return True
        if err.code() == KafkaError._PARTITION_EOF:
            return False
        if is_fatal(err):
            raise ConsumerFenced(err.str())
        log.warning("consumer error: %s", err.name())
        return False

    # -- processing ----------------------------------------------------------------------------
    def _submit(self, flight: InFlight) -> None:
        flight.future = self._writer.submit(self._write, flight.rows, self._stop)
        self._pending.append(flight)

    def _finish(self) -> None:
        """Settle every pending batch, oldest first."""
        while self._pending:
            self._settle(self._written())

    def _written(self) -> tuple[InFlight, WriteResult]:
        """The oldest pending batch once its transaction has committed (the writer thread takes
        batches in order)."""
        flight = self._pending.popleft()
        return flight, self._await(flight.future)

    def _settle(self, written: tuple[InFlight, WriteResult]) -> None:
        """What a written batch stored (forwarded, acknowledged), its dead letters (flushed),
        then its offsets. By then the writer has the next batch already (see ``_loop``), so
        these broker round trips overlap the next transaction instead of idling the writer."""
        flight, result = written
        ranges = offset_ranges(flight.batch)
        self._forward(ranges, result)
        self._dead_letter(flight.rejected + result.rejected)
        offsets = next_offsets(self._topics.events, ranges)  # the one topic subscribed
        self._commit(offsets)
        self._observe(
            offsets, flight.batch, flight.rows, result, time.perf_counter() - flight.started
        )

    def _forward(self, ranges: dict[int, tuple[int, int]], result: WriteResult) -> None:
        """Produce what the batch stored, one record per source partition (``ranges``: the
        offsets it processed, inclusive), and wait for the broker's acks; the offsets are
        committed only after this returns."""
        started = time.perf_counter()
        batches = accepted_batches(self._topics.events, ranges, result.accepted)
        try:
            self._forwarder.send(batches, self._stop)
        except ForwardStopped as exc:
            raise SinkStopped(str(exc)) from exc
        self.metrics.forwarded.inc(len(result.accepted))
        self.metrics.forward_seconds.observe(time.perf_counter() - started)

    def _await(self, future: Future[WriteResult]) -> WriteResult:
        # While the database is away, stop fetching instead of piling records up in memory.
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    return future.result(timeout=0.5)
                except FutureTimeout:
                    if not self.database_up and not paused:
                        paused = self._consumer.assignment()
                        self._consumer.pause(paused)
        finally:
            if paused:
                self._consumer.resume(paused)

    def _write(self, rows: list[Row], stop: threading.Event) -> WriteResult:
        """Writer thread: one transaction, retried with backoff on connection/transaction faults."""
        backoff = delays(self.config.retry_initial_seconds, self.config.retry_max_seconds)
        while True:
            try:
                result = self._store.write(rows)
                break
            except psycopg.OperationalError as exc:
                self._fault(exc)
                if stop.wait(next(backoff)):
                    raise SinkStopped from exc
        self.database_up = True
        self.metrics.db_up.set(1)
        self._batches += 1
        log.info(
            "batch %d: records=%d inserted=%d duplicates=%d erased=%d dlq=%d accepted=%d",
            self._batches,
            len(rows),
            result.inserted,
            result.duplicates,
            result.erased,
            len(result.rejected),
            len(result.accepted),
        )
        return result

    def _fault(self, exc: psycopg.OperationalError) -> None:
        log.warning("database fault (%s, sqlstate %s); retrying", type(exc).__name__, exc.sqlstate)
        self.database_up = False
        self.metrics.db_up.set(0)
        self.metrics.db_retries.inc()
        self._store.reset()

    def _dead_letter(self, rejections: list[Rejection]) -> None:
        for rejection in rejections:
            self._dlq.send(rejection)
            self.metrics.dlq.labels(rejection.stage).inc()
        if rejections:
            self._dlq.flush()

    def _commit(self, offsets: dict[TopicPartitionKey, int]) -> None:
        mine = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in offsets.items()
            if (topic, partition) in self._assigned
        ]
        if not mine:
            return
        try:
            committed = self._consumer.commit(offsets=mine, asynchronous=False)
        except KafkaException as exc:
            # Rows are stored idempotently: the new owner re-reads them and skips them.
            log.warning("offset commit refused: %s", exc.args[0].name())
            self.metrics.commit_failures.inc()
            return
        failed = [tp for tp in committed or [] if tp.error is not None]
        if failed:
            log.warning("offset commit refused for %d partition(s)", len(failed))
            self.metrics.commit_failures.inc()

    def _observe(
        self,
        offsets: dict[TopicPartitionKey, int],
        batch: list[Message],
        rows: list[Row],
        r: WriteResult,
        secs: float,
    ) -> None:
        m = self.metrics
        m.batches.inc()
        m.events_written.inc(r.inserted)
        m.duplicates_skipped.inc(r.duplicates)
        m.erased_dropped.inc(r.erased)
        m.clamped.inc(sum(1 for row in rows if row.clamped))
        m.batch_seconds.observe(secs)
        m.batch_size.observe(len(batch))
        m.last_commit.set(time.time())
        for (topic, partition), offset in offsets.items():
            _lo, hi = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True
            )
            if hi is not None and hi >= 0 and (topic, partition) in self._assigned:
                m.lag.labels(topic, str(partition)).set(max(0, hi - offset))
                self._lag_labels.add((topic, partition))
