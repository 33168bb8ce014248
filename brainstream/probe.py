"""Pipeline health: broker, database, consumer lag, dead letters and last write times.

Lag is ``end offset - committed offset`` per consumer group and partition of the events topic
(of the accepted stream for a group that commits only there: the aggregate workers)
(end offsets read with ``read_committed`` isolation, so transaction markers do not count as
lag). A group that never committed on a partition would start from the earliest retained record,
so its lag there is the whole retained partition. Every projection with an offset fence in
``stream_offsets`` (the workers' ``aggregates``) also gets a *fence lag* (``end - next_offset``):
the fence, not the Kafka commit, says what the aggregates already contain.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import confluent_kafka.admin
import psycopg
from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from psycopg import errors, sql

from eventlog.clients import consumer_conf
from schemas.config import TopicSettings
from schemas.db import EVENTS_TABLE, STREAM_OFFSETS_TABLE
from schemas.errors import BrainstreamError

LagSource = Literal["kafka", "fence"]
_T = TypeVar("_T")
_OffsetSpec: Any = confluent_kafka.admin.OffsetSpec  # type: ignore[attr-defined]


class HealthCheckError(BrainstreamError):
    """A component could not be checked; ``component`` is ``kafka`` or ``postgres``."""

    def __init__(self, component: str, reason: str) -> None:
        self.component = component
        self.reason = reason
        super().__init__(f"{component}: {reason}")


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    partition: int
    position: int | None
    """Committed offset (or fence); ``None`` when the group has none on this partition."""
    end: int
    lag: int
    source: LagSource = "kafka"


@dataclass(frozen=True, slots=True)
class KafkaFacts:
    end_offsets: dict[int, int]
    lags: list[PartitionLag]
    dlq_records: int

    @property
    def events_total(self) -> int:
        return sum(self.end_offsets.values())

    def committed_total(self, group: str) -> int:
        return sum(x.position or 0 for x in self.lags if x.group == group and x.source == "kafka")


@dataclass(frozen=True, slots=True)
class Fence:
    group: str
    """The fenced projection (``stream_offsets.consumer_group``), not a Kafka consumer group."""
    partition: int
    next_offset: int


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    last_raw_write: datetime | None
    last_aggregate_write: datetime | None
    fences: list[Fence]


@dataclass(frozen=True, slots=True)
class Rates:
    seconds: float
    events_in: float
    """Records appended to the events topic per second."""
    consumed: dict[str, float]
    """Offsets committed per second, per group (the sink's is its write rate)."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_lag: int | None = None
    max_dlq: int | None = None


@dataclass(frozen=True)
class HealthReport:
    checked_at: datetime
    kafka: KafkaFacts | None
    database: DatabaseFacts | None
    errors: dict[str, str] = field(default_factory=dict)
    rates: Rates | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return report_dict(self)


# -- pure logic ----------------------------------------------------------------------------------
def lag_rows(
    group: str,
    positions: dict[int, int | None],
    ends: dict[int, int],
    starts: dict[int, int],
    source: LagSource = "kafka",
) -> list[PartitionLag]:
    """One row per partition of the topic; a missing position counts from the earliest offset."""
    rows = []
    for partition in sorted(ends):
        position = positions.get(partition)
        base = position if position is not None else starts.get(partition, 0)
        lag = max(0, ends[partition] - base)
        rows.append(PartitionLag(group, partition, position, ends[partition], lag, source))
    return rows


def fence_lags(fences: Iterable[Fence], ends: dict[int, int]) -> list[PartitionLag]:
    by_group: dict[str, dict[int, int | None]] = {}
    for f in fences:
        by_group.setdefault(f.group, {})[f.partition] = f.next_offset
    rows: list[PartitionLag] = []
    for group in sorted(by_group):
        rows += lag_rows(group, by_group[group], ends, {}, "fence")
    return rows


def rates(previous: HealthReport, current: HealthReport, seconds: float) -> Rates | None:
    """Per-second growth of the topic's end offsets and of each group's committed offsets."""
    if previous.kafka is None or current.kafka is None or seconds <= 0:
        return None
    before, now = previous.kafka, current.kafka
    groups = {x.group for x in now.lags if x.source == "kafka"}
    consumed = {
        g: max(0.0, (now.committed_total(g) - before.committed_total(g)) / seconds)
        for g in sorted(groups)
    }
    events_in = max(0.0, (now.events_total - before.events_total) / seconds)
    return Rates(seconds, events_in, consumed)


def problems(report: HealthReport, limits: Thresholds) -> list[str]:
    """Why the pipeline is unhealthy, one sentence each (empty when it is healthy)."""
    found = [f"{name} is down: {reason}" for name, reason in sorted(report.errors.items())]
    if report.kafka is not None:
        if limits.max_lag is not None:
            found += [
                f"group {x.group} partition {x.partition} lags by {x.lag} "
                f"(more than {limits.max_lag})"
                for x in report.kafka.lags
                if x.lag > limits.max_lag
            ]
        if limits.max_dlq is not None and report.kafka.dlq_records > limits.max_dlq:
            found.append(
                f"the dead-letter topic holds {report.kafka.dlq_records} records "
                f"(more than {limits.max_dlq})"
            )
    return found


def report_dict(report: HealthReport) -> dict[str, Any]:
    kafka, db, r = report.kafka, report.database, report.rates
    return {
        "ok": report.ok,
        "checked_at": report.checked_at.isoformat(),
        "problems": report.problems,
        "errors": report.errors,
        "kafka": None
        if kafka is None
        else {
            "events_total": kafka.events_total,
            "dlq_records": kafka.dlq_records,
            "lags": [_lag_dict(x) for x in kafka.lags],
        },
        "database": None
        if db is None
        else {
            "last_raw_write": _iso(db.last_raw_write),
            "last_aggregate_write": _iso(db.last_aggregate_write),
        },
        "rates": None
        if r is None
        else {"seconds": r.seconds, "events_in": r.events_in, "consumed": r.consumed},
    }


def _lag_dict(x: PartitionLag) -> dict[str, Any]:
    return {
        "group": x.group,
        "partition": x.partition,
        "position": x.position,
        "end": x.end,
        "lag": x.lag,
        "source": x.source,
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


# -- Kafka ---------------------------------------------------------------------------------------
class KafkaClients:
    """An admin client and, per group, a consumer that only reads the group's commits.

    Committed offsets are read with ``Consumer.committed()`` (the consumer never subscribes, so
    it never joins the group), not ``AdminClient.list_consumer_group_offsets``: librdkafka
    crashes the process when that admin request meets NOT_COORDINATOR, as it does while a
    broker restarts (confluentinc/librdkafka#5040, confluent-kafka-python#1982).
    """

    def __init__(self, conf: dict[str, Any], timeout: float) -> None:
        # librdkafka logs every reconnect attempt (many a second while a broker is down); the
        # report already says the broker is unreachable, so these clients stay silent.
        self._conf = {**conf, "socket.timeout.ms": int(timeout * 1000), "log_level": 0}
        self._admin: AdminClient | None = None
        self._consumers: dict[str, Consumer] = {}

    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self._conf)
        return self._admin

    def consumer(self, group: str) -> Consumer:
        if group not in self._consumers:
            conf = consumer_conf(self._conf, group, offset_reset=None)
            self._consumers[group] = Consumer(conf)
        return self._consumers[group]

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()
        self._admin = None


def kafka_facts(
    clients: KafkaClients,
    topics: TopicSettings,
    groups: Iterable[str],
    timeout: float,
    fences: Iterable[Fence] = (),
) -> KafkaFacts:
    """End offsets, lag per group (Kafka commits, then fences) and the dead-letter count.

    Raises:
        HealthCheckError: the brokers are unreachable or the events topic does not exist.
    """
    admin = clients.admin()
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise HealthCheckError("kafka", f"unreachable ({_name(exc)})") from None
    partitions = _partitions(metadata, topics.events)
    if partitions is None:
        raise HealthCheckError("kafka", f"topic {topics.events} does not exist")
    ends = _offsets(admin, topics.events, partitions, _OffsetSpec.latest(), timeout)
    starts = _offsets(admin, topics.events, partitions, _OffsetSpec.earliest(), timeout)
    lags: list[PartitionLag] = []
    accepted = _partitions(metadata, topics.accepted)
    accepted_offsets: tuple[dict[int, int], dict[int, int]] | None = None
    for group in groups:
        committed = _committed(clients.consumer(group), group, topics.events, partitions, timeout)
        if accepted and all(c is None for c in committed.values()):
            # The aggregate workers consume the sink's accepted stream: their lag is there.
            on_accepted = _committed(
                clients.consumer(group), group, topics.accepted, accepted, timeout
            )
            if any(c is not None for c in on_accepted.values()):
                if accepted_offsets is None:
                    accepted_offsets = (
                        _offsets(admin, topics.accepted, accepted, _OffsetSpec.latest(), timeout),
                        _offsets(admin, topics.accepted, accepted, _OffsetSpec.earliest(), timeout),
                    )
                lags += lag_rows(group, on_accepted, *accepted_offsets)
                continue
        lags += lag_rows(group, committed, ends, starts)
    lags += fence_lags(fences, ends)
    return KafkaFacts(ends, lags, _dlq_size(admin, metadata, topics.dlq, timeout))


def _partitions(metadata: Any, topic: str) -> list[int] | None:
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        return None
    return sorted(info.partitions)


def _offsets(
    admin: AdminClient, topic: str, partitions: list[int], spec: Any, timeout: float
) -> dict[int, int]:
    request = {TopicPartition(topic, p): spec for p in partitions}

    def ask() -> dict[int, int]:
        futures = admin.list_offsets(
            request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout
        )
        return {tp.partition: int(f.result(timeout).offset) for tp, f in futures.items()}

    return _retrying(ask, timeout, f"offsets of {topic}")


def _committed(
    consumer: Consumer, group: str, topic: str, partitions: list[int], timeout: float
) -> dict[int, int | None]:
    request = [TopicPartition(topic, p) for p in partitions]

    def ask() -> dict[int, int | None]:
        found = consumer.committed(request, timeout=timeout)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}

    return _retrying(ask, timeout, f"offsets of group {group}")


_TRANSIENT = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def _retrying(ask: Callable[[], _T], timeout: float, what: str) -> _T:
    """Retries transient broker errors (a group coordinator moving or still loading)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ask()
        except KafkaException as exc:
            err: Any = exc.args[0] if exc.args else None
            code = err.code() if hasattr(err, "code") else None
            transient = code in _TRANSIENT or bool(hasattr(err, "retriable") and err.retriable())
            if not transient or time.monotonic() + 0.25 > deadline:
                raise HealthCheckError("kafka", f"{what} unavailable ({_name(exc)})") from None
            time.sleep(0.25)


def _dlq_size(admin: AdminClient, metadata: Any, topic: str, timeout: float) -> int:
    partitions = _partitions(metadata, topic)
    if partitions is None:
        return 0
    ends = _offsets(admin, topic, partitions, _OffsetSpec.latest(), timeout)
    starts = _offsets(admin, topic, partitions, _OffsetSpec.earliest(), timeout)
    return sum(ends[p] - starts[p] for p in partitions)


def _name(exc: KafkaException) -> str:
    err: Any = exc.args[0] if exc.args else None
    return str(err.name()) if hasattr(err, "name") else str(exc)


# -- Postgres ------------------------------------------------------------------------------------
# The newest write to the raw table, read from its newest rows by event time (an index scan):
# ingested_at has no index, and a late event written just now is not among them.
_LAST_RAW = sql.SQL(
    "SELECT max(ingested_at) FROM"
    " (SELECT ingested_at FROM {events} ORDER BY occurred_at DESC LIMIT 1000) AS newest"
).format(events=sql.Identifier(EVENTS_TABLE))
_LAST_AGGREGATE = sql.SQL("SELECT max(updated_at) FROM {offsets}").format(
    offsets=sql.Identifier(STREAM_OFFSETS_TABLE)
)
_FENCES = sql.SQL(
    "SELECT consumer_group, kafka_partition, next_offset FROM {offsets} WHERE topic = %s"
).format(offsets=sql.Identifier(STREAM_OFFSETS_TABLE))


def database_facts(conninfo: str, topic: str, timeout: float) -> DatabaseFacts:
    """The newest raw and aggregate rows and the projections' fences on ``topic``.

    Raises:
        HealthCheckError: Postgres is unreachable, refuses the login, or is not migrated.
    """
    try:
        with psycopg.connect(
            conninfo, connect_timeout=max(1, math.ceil(timeout)), autocommit=True
        ) as conn:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{timeout}s",))
            last_raw = conn.execute(_LAST_RAW).fetchone()
            last_agg = conn.execute(_LAST_AGGREGATE).fetchone()
            fences = [Fence(str(g), int(p), int(n)) for g, p, n in conn.execute(_FENCES, (topic,))]
    except errors.UndefinedTable:
        raise HealthCheckError(
            "postgres", "schema not migrated (run brainstream db migrate)"
        ) from None
    except psycopg.OperationalError as exc:
        raise HealthCheckError("postgres", f"unreachable ({type(exc).__name__})") from None
    return DatabaseFacts(_at(last_raw), _at(last_agg), fences)


def _at(row: tuple[Any, ...] | None) -> datetime | None:
    return row[0] if row is not None and isinstance(row[0], datetime) else None


# -- composing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """Everything one health check needs; ``check()`` never raises on an unhealthy pipeline."""

    kafka_conf: dict[str, Any]
    topics: TopicSettings
    conninfo: str
    groups: tuple[str, ...]
    timeout: float = 5.0
    limits: Thresholds = Thresholds()
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)

    def clients(self) -> KafkaClients:
        return KafkaClients(self.kafka_conf, self.timeout)

    def check(self, clients: KafkaClients | None = None) -> HealthReport:
        failures: dict[str, str] = {}
        database: DatabaseFacts | None = None
        kafka: KafkaFacts | None = None
        try:
            database = database_facts(self.conninfo, self.topics.events, self.timeout)
        except HealthCheckError as exc:
            failures[exc.component] = exc.reason
        fences = database.fences if database is not None else []
        own = clients is None
        kafka_clients = clients if clients is not None else self.clients()
        try:
            kafka = kafka_facts(kafka_clients, self.topics, self.groups, self.timeout, fences)
        except HealthCheckError as exc:
            failures[exc.component] = exc.reason
        finally:
            if own:
                kafka_clients.close()
        report = HealthReport(self.wall(), kafka, database, failures)
        return replace(report, problems=problems(report, self.limits))


class Checker(Protocol):
    """What a monitor needs of a :class:`Probe` (tests pass a fake)."""

    def clients(self) -> KafkaClients: ...

    def check(self, clients: KafkaClients | None = None) -> HealthReport: ...


class HealthMonitor:
    """Reuses a report for ``ttl`` seconds and derives rates from consecutive reports."""

    def __init__(
        self, probe: Checker, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._probe = probe
        self._ttl = ttl
        self._clock = clock
        self._clients: KafkaClients | None = None
        self._last: tuple[float, HealthReport] | None = None
        self._lock = threading.Lock()

    def current(self) -> HealthReport:
        with self._lock:
            return self._refresh()

    def _refresh(self) -> HealthReport:
        now = self._clock()
        if self._last is not None and now - self._last[0] < self._ttl:
            return self._last[1]
        if self._clients is None:
            self._clients = self._probe.clients()
        report = self._probe.check(self._clients)
        if self._last is not None:
            then, previous = self._last
            report = replace(report, rates=rates(previous, report, now - then))
        self._last = (now, report)
        return report

    def close(self) -> None:
        with self._lock:
            if self._clients is not None:
                self._clients.close()
                self._clients = None
