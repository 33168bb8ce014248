"""``replay --to aggregates``: rebuilt from the accepted stream into shadow tables, swapped in
atomically, equal to ``aggregates verify``'s reference, with live workers' progress caught up."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer
from psycopg import sql

from brainstream.replay_aggregates import Target, rebuild_aggregates
from eventlog.reader import LogReader, reader_conf
from schemas.config import KafkaSettings, TopicSettings
from sinks.export import ExportConfig
from streams.reference import verify
from tests.fixtures.services import PgSchema
from tests.sinks.export.helpers import T0, events
from tests.streams.helpers import (
    Placed,
    accepted_batches,
    copy_raw,
    place,
    produce,
    produce_accepted,
)

pytestmark = pytest.mark.integration

PROJECTION = "aggregates"


_DAY_TOTAL = "SELECT coalesce(sum(event_count), 0) FROM agg_type_buckets WHERE granularity = 'day'"


class Watcher:
    """A reader polling the live day totals for as long as the rebuild runs."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self.seen: set[int] = set()
        self.samples = 0

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(0.2)
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(_DAY_TOTAL).fetchone()
                assert row is not None
                self.seen.add(int(row[0]))
                self.samples += 1
                time.sleep(0.01)


def forward(
    kafka: KafkaSettings, topics: TopicSettings, pg: PgSchema, placed: list[Placed], twice: int = 0
) -> None:
    """The sink's work: raw rows stored, accepted batches forwarded (the first ``twice`` of them
    forwarded again, as after a sink crash between its commit and its produce)."""
    copy_raw(pg.conninfo, placed)
    batches = accepted_batches(placed, topics.events, 300)
    produce_accepted(kafka, topics.accepted, batches + batches[:twice])


class ProduceMeanwhile:
    """Progress hook: when the rebuild starts, more events arrive and a 'live worker' applies
    them (its fences move past the rebuild's captured ends), and user-4 is erased."""

    def __init__(
        self, kafka: KafkaSettings, topics: TopicSettings, pg: PgSchema, nxt: dict[int, int]
    ) -> None:
        self._kafka, self._topics, self._pg, self._nxt = kafka, topics, pg, nxt
        self.total = 0
        self.placed: list[Placed] = []

    def start(self, total: int) -> None:
        self.total = total
        more = events(700, users=9, start=T0.replace(day=5))
        self.placed = place(more, self._topics.events_partitions, self._nxt)
        forward(self._kafka, self._topics, self._pg, self.placed)
        with psycopg.connect(self._pg.conninfo, autocommit=True) as conn:
            conn.execute("INSERT INTO erased_users (user_id) VALUES ('user-4')")
            for partition, high in self._nxt.items():
                conn.execute(
                    "INSERT INTO stream_offsets (consumer_group, topic, kafka_partition,"
                    " next_offset) VALUES (%s, %s, %s, %s)",
                    (PROJECTION, self._topics.events, partition, high),
                )

    def advance(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_rebuilt_aggregates_equal_the_reference_and_replace_the_live_tables(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    nxt: dict[int, int] = {}
    first = place(events(4_000, users=40), topics.events_partitions, nxt)
    forward(kafka_settings, topics, pg_schema, first, twice=2)
    produce(kafka_settings, topics.accepted, [b"not a batch"])
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO erased_users (user_id) VALUES ('user-3')")
        conn.execute(
            "INSERT INTO agg_user_days VALUES"
            " ('stale-user', 'login', current_date, array_fill(0, ARRAY[24]), 99, now(), now())"
        )
        conn.execute("INSERT INTO agg_type_buckets VALUES ('day', '2026-01-01', 'login', 123, 1)")
        grants_before = _grants(conn, pg_schema.name)
    assert grants_before, "the migrations grant the worker and eraser roles"
    hook = ProduceMeanwhile(kafka_settings, topics, pg_schema, nxt)
    target = Target(PROJECTION, topics.events)

    watcher = Watcher(pg_schema.conninfo)
    consumer = Consumer(reader_conf(kafka_settings.librdkafka(), "brainstream-export-test"))
    try:
        log_reader = LogReader(consumer, topics.accepted, ExportConfig())
        with watcher:
            result = rebuild_aggregates(
                log_reader, pg_schema.conninfo, target, frozenset({"user-3"}), progress=hook
            )
    finally:
        consumer.close()

    def of(user: str, placed: list[Placed]) -> int:
        return sum(1 for x in placed if x.event.user_id == user)

    twice = sum(len(b) for b in accepted_batches(first, topics.events, 300)[:2])
    main_records = len(accepted_batches(first, topics.events, 300)) + 2 + 1
    assert hook.total == result.read - result.caught_up == main_records
    assert (result.invalid, result.below_fence) == (1, twice)
    # user-3: left out as read; user-4 (erased meanwhile): left out in the catch-up, what was
    # already folded is removed from the shadow tables before the swap.
    erased = of("user-3", first) + of("user-3", hook.placed) + of("user-4", hook.placed)
    assert result.erased == erased > 0
    assert result.fences == nxt
    kept = 4_000 + 700 - sum(of(u, first + hook.placed) for u in ("user-3", "user-4"))
    with psycopg.connect(pg_schema.conninfo) as conn:
        report = verify(conn)
        assert report.ok, report.samples
        assert report.rows["agg_user_days"] > 0
        row = conn.execute(_DAY_TOTAL).fetchone()
        users = conn.execute("SELECT count(DISTINCT user_id) FROM agg_user_days").fetchone()
    assert row is not None and row[0] == kept
    assert users == (40 - 2,)
    # Readers saw the old tables, then the new ones: never anything in between.
    assert watcher.seen == {123, row[0]} and watcher.samples > 20
    with psycopg.connect(pg_schema.conninfo) as conn:
        stale = conn.execute("SELECT count(*) FROM agg_user_days WHERE user_id = 'stale-user'")
        assert stale.fetchone() == (0,)
        assert _grants(conn, pg_schema.name) == grants_before
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg_schema.name,)
        )}  # fmt: skip
        assert "agg_user_days_day" in indexes
        shadow = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (f"{pg_schema.name}_rebuild",)
        )
        assert shadow.fetchone() == (0,)
        fences = conn.execute(
            sql.SQL("SELECT kafka_partition, next_offset FROM stream_offsets"
                    " WHERE consumer_group = %s ORDER BY 1"),
            (PROJECTION,),
        ).fetchall()  # fmt: skip
        assert dict(fences) == result.fences


def _grants(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> set[tuple[str, ...]]:
    rows = conn.execute(
        "SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants"
        " WHERE table_schema = %s AND table_name LIKE 'agg\\_%%' AND grantee <> current_user",
        (schema,),
    ).fetchall()
    return {tuple(map(str, r)) for r in rows}
