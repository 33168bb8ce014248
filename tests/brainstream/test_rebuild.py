"""``replay --to aggregates``: rebuilt from the log into shadow tables, swapped in atomically,
equal to ``aggregates verify``'s reference, with live workers' progress caught up."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from brainstream.rebuild import Target, rebuild_aggregates
from schemas.config import KafkaSettings, TopicSettings
from sinks.export import ExportConfig, LogRange
from sinks.replay import replay_to_raw
from streams.rebuild import verify
from streams.records import FutureSkew
from tests.fixtures.services import PgSchema
from tests.sinks.export.helpers import T0, events, produce, produce_raw, reader

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


class ProduceMeanwhile:
    """Progress hook: when the rebuild starts, more events arrive and a 'live worker' applies
    them (its fences move past the rebuild's captured ends), and user-4 is erased."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings, pg: PgSchema) -> None:
        self._kafka, self._topics, self._pg = kafka, topics, pg
        self.total = 0

    def start(self, total: int) -> None:
        self.total = total
        produce(self._kafka, self._topics.events, events(700, users=9, start=T0.replace(day=5)))
        with reader(self._kafka, self._topics, ExportConfig()) as log_reader:
            marks = log_reader.watermarks()
        with psycopg.connect(self._pg.conninfo, autocommit=True) as conn:
            conn.execute("INSERT INTO erased_users (user_id) VALUES ('user-4')")
            for partition, (_low, high) in marks.items():
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
    produce(kafka_settings, topics.events, events(4_000, users=40))
    produce_raw(kafka_settings, topics.events, [(b"user-1", b'{"type":"nope"}', [])])
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO erased_users (user_id) VALUES ('user-3')")
        conn.execute("INSERT INTO agg_user_totals VALUES ('stale-user', 'login', 99, now(), now())")
        conn.execute("INSERT INTO agg_type_buckets VALUES ('day', '2026-01-01', 'login', 123, 1)")
        grants_before = _grants(conn, pg_schema.name)
    assert grants_before, "the migrations grant the worker and eraser roles"
    hook = ProduceMeanwhile(kafka_settings, topics, pg_schema)
    target = Target(PROJECTION, topics.events, FutureSkew())

    watcher = Watcher(pg_schema.conninfo)
    with reader(kafka_settings, topics, ExportConfig()) as log_reader:
        with watcher:
            result = rebuild_aggregates(
                log_reader, pg_schema.conninfo, target, frozenset({"user-3"}), progress=hook
            )
        replay_to_raw(log_reader, LogRange(), pg_schema.conninfo)  # the reference's input
        marks = log_reader.watermarks()

    assert hook.total == result.read - result.caught_up == 4_001
    # user-3: 100 + 78 left out as they are read; user-4 (erased meanwhile): 78 left out in the
    # catch-up, the 100 already folded are removed from the shadow tables before the swap.
    assert (result.invalid, result.erased, result.caught_up) == (1, 100 + 78 + 78, 700)
    assert result.fences == {p: high for p, (_low, high) in marks.items()}
    with psycopg.connect(pg_schema.conninfo) as conn:
        report = verify(conn)
        assert report.ok, report.samples
        assert report.rows["agg_user_totals"] > 0
        row = conn.execute(_DAY_TOTAL).fetchone()
        users = conn.execute("SELECT count(DISTINCT user_id) FROM agg_user_totals").fetchone()
    assert row is not None and row[0] == result.counted - 100 == 4_000 - 200 + 700 - 156
    assert users == (40 - 2,)
    # Readers saw the old tables, then the new ones: never anything in between.
    assert watcher.seen == {123, row[0]} and watcher.samples > 20
    with psycopg.connect(pg_schema.conninfo) as conn:
        stale = conn.execute("SELECT count(*) FROM agg_user_totals WHERE user_id = 'stale-user'")
        assert stale.fetchone() == (0,)
        assert _grants(conn, pg_schema.name) == grants_before
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg_schema.name,)
        )}  # fmt: skip
        assert "agg_user_buckets_user" in indexes
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
