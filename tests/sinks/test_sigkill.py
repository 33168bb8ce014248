"""Acceptance: 200k events, the sink SIGKILLed >= 10 times (incl. between the DB commit and the
offset commit), restarted: exactly the produced set of event_ids in Postgres; replay adds none."""

from __future__ import annotations

import random
import signal
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from schemas.config import KafkaSettings, TopicSettings
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema, Services
from tests.sinks.conftest import event_records, produce
from tests.sinks.faults import logged_counts, sink_env, sink_process, stop_sink, wait_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOTAL = 200_000
ROUNDS = 12
TYPES = ["page_view", "task_created", "search", "login", "logout", "file_upload"]


def _stored_ids(conninfo: str) -> tuple[set[str], int]:
    with psycopg.connect(conninfo) as conn:
        ids = [str(r[0]) for r in conn.execute("SELECT event_id FROM analytics_events")]
    return set(ids), len(ids)


def test_sigkilled_sink_stores_every_event_exactly_once(
    services: Services,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    tmp_path: Path,
) -> None:
    rng = random.Random(20260301)
    events = [sample_event(TYPES[i % len(TYPES)], user_id=f"u{i % 997}") for i in range(TOTAL)]
    records = event_records(events)
    chunk = TOTAL // (ROUNDS + 1) + 1
    produced = {str(e.event_id) for e in events}
    group, log = f"sigkill-{uuid.uuid4().hex[:8]}", tmp_path / "sink.log"
    env = sink_env(
        kafka_settings, topics, services.postgres_dsn, pg_schema.name, group, batch_max_records=1000
    )

    kills = 0
    for round_ in range(ROUNDS):  # producers keep producing while the sink dies and restarts
        produce(kafka_settings, topics.events, records[round_ * chunk : (round_ + 1) * chunk])
        if round_ % 2 == 0:  # the hook: SIGKILL right after the DB commit of batch N
            with sink_process(env, log, crash_after_batch=rng.randint(1, 6)) as proc:
                assert proc.wait(120) == -signal.SIGKILL
        else:  # at a random moment
            with sink_process(env, log) as proc:
                time.sleep(rng.uniform(0.8, 2.5))
                proc.kill()
                proc.wait(30)
        kills += 1
    produce(kafka_settings, topics.events, records[ROUNDS * chunk :])
    with sink_process(env, log) as proc:
        wait_caught_up(kafka_settings, group, topics.events, timeout=240)
        assert stop_sink(proc) == 0  # SIGTERM: graceful

    stored, rows = _stored_ids(pg_schema.conninfo)
    assert kills >= 10
    assert rows == TOTAL and stored == produced  # 0 missing, 0 duplicate
    _inserted, duplicates = logged_counts(log)  # a kill may beat a batch's log line: no equality
    assert duplicates > 0, "no redelivery was skipped: the fault path did not run"

    replay_log = tmp_path / "replay.log"
    replay_env = sink_env(
        kafka_settings,
        topics,
        services.postgres_dsn,
        pg_schema.name,
        f"{group}-replay",
        batch_max_records=5000,
    )
    with sink_process(replay_env, replay_log) as proc:
        wait_caught_up(kafka_settings, f"{group}-replay", topics.events, timeout=240)
        assert stop_sink(proc) == 0
    assert _stored_ids(pg_schema.conninfo)[1] == TOTAL
    assert logged_counts(replay_log) == (0, TOTAL)
