"""Acceptance: Postgres stopped and started (pg_ctl) in the middle of a run: no loss, no duplicate.

Runs against a PRIVATE Postgres cluster (the shared one serves other tests meanwhile); Kafka is
the shared broker with this test's own topics.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from brainstream.dev import postgres
from brainstream.migrate import migrate
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from tests.fixtures.samples import sample_event
from tests.fixtures.services import TEST_DEV_DIR
from tests.sinks.conftest import count_rows, event_records, produce, running_sink, wait_for
from tests.sinks.faults import wait_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOTAL = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def private_pg() -> Iterator[postgres.PostgresNode]:
    # Under the repo's .brainstream/ (not /tmp): the postgres OS user must be able to enter it.
    TEST_DEV_DIR.parent.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="sink-pg-", dir=TEST_DEV_DIR.parent))
    node = postgres.PostgresNode(home, _free_port())
    try:
        postgres.start(node, lambda _m: None)
        yield node
    finally:
        postgres.stop(node, lambda _m: None)
        shutil.rmtree(home, ignore_errors=True)


def test_postgres_restart_mid_run_loses_and_duplicates_nothing(
    private_pg: postgres.PostgresNode, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    migrate(private_pg.dsn, "sink")
    conninfo = make_conninfo(private_pg.dsn, options="-c search_path=sink")
    events = [sample_event("page_view", user_id=f"u{i % 300}") for i in range(TOTAL)]
    produce(kafka_settings, topics.events, event_records(events))
    config = SinkConfig(
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        batch_max_records=300,
        retry_initial_seconds=0.1,
        retry_max_seconds=1.0,
    )

    with running_sink(config, kafka_settings, topics, conninfo) as sink:
        wait_for(lambda: count_rows(conninfo) > 3_000, what="first rows")
        postgres.stop(private_pg, lambda _m: None)  # pg_ctl stop -m fast, mid-run
        time.sleep(3)
        assert sink.health()["database_up"] is False
        postgres.start(private_pg, lambda _m: None)
        wait_caught_up(kafka_settings, config.group_id, topics.events, timeout=180)

    with psycopg.connect(conninfo) as conn:
        ids = [str(r[0]) for r in conn.execute("SELECT event_id FROM analytics_events")]
    assert len(ids) == TOTAL and set(ids) == {str(e.event_id) for e in events}
    assert sink.metrics.db_retries._value.get() > 0  # the fault path ran
