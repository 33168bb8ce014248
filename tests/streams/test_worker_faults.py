"""Worker processes against the real broker and database, killed, stopped and replayed.

Each scenario ends with ``verify``: the streamed aggregates equal the SQL recomputation from
``analytics_events`` (tolerance 0, every bucket of every granularity).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from schemas.config import TopicSettings
from streams.rebuild import VerifyReport, verify
from tests.fixtures.services import PgSchema, Services
from tests.streams.helpers import (
    WorkerEnv,
    committed,
    copy_raw,
    end_offsets,
    fences,
    make_events,
    produce,
    stop,
    wait_caught_up,
    wait_progress,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SESSION_TIMEOUT_S = 6


@pytest.fixture
def workers(
    services: Services, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> Iterator[WorkerEnv]:
    env = WorkerEnv(
        services.kafka, services.postgres_dsn, pg_schema.name, topics, f"g-{uuid.uuid4().hex[:8]}"
    )
    env.log_dir = tmp_path
    yield env
    for proc in env.procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            stop(proc)


def start(env: WorkerEnv, **extra: str) -> subprocess.Popen[bytes]:
    proc = env.start(env.log_dir / f"worker-{len(env.procs)}.log", **extra)
    env.procs.append(proc)
    return proc


def feed(env: WorkerEnv, conninfo: str, n: int, users: int, seed: int) -> dict[int, int]:
    """Put ``n`` events in the raw table and the topic (plus one undecodable record)."""
    events = make_events(n, users, seed=seed)
    copy_raw(conninfo, events)
    produce(env.kafka, env.topics.events, events)
    produce(env.kafka, env.topics.events, [b"not json"])
    return end_offsets(env.kafka, env.topics.events, env.topics.events_partitions)


def verified(conninfo: str) -> VerifyReport:
    with psycopg.connect(conninfo) as conn:
        report = verify(conn)
    assert report.ok, (report.differences, report.samples)
    return report


def test_200k_events_1k_users_with_five_sigkills(workers: WorkerEnv, pg_schema: PgSchema) -> None:
    target = feed(workers, pg_schema.conninfo, 200_000, 1_000, seed=11)
    proc = start(workers)
    progress = 0
    for _ in range(5):
        progress = wait_progress(pg_schema.conninfo, workers.topics.events, progress + 8_000)
        proc.kill()
        proc.wait()
        assert progress < sum(target.values()), "the stream ended before the fifth kill"
        proc = start(workers)
    wait_caught_up(pg_schema.conninfo, workers.topics.events, target, timeout=240)
    stop(proc)
    report = verified(pg_schema.conninfo)
    assert report.rows["agg_user_totals"] > 1_000


def test_sigstopped_zombie_resumes_after_a_takeover(
    workers: WorkerEnv, pg_schema: PgSchema
) -> None:
    feed(workers, pg_schema.conninfo, 15_000, 300, seed=12)
    zombie = start(workers, BRAINSTREAM_WORKER_BATCH_SIZE="500")
    wait_progress(pg_schema.conninfo, workers.topics.events, 1_000)
    start(workers)
    time.sleep(SESSION_TIMEOUT_S + 2)  # both members in the group
    os.kill(zombie.pid, signal.SIGSTOP)
    at_stop = sum(fences(pg_schema.conninfo, workers.topics.events).values())
    feed(workers, pg_schema.conninfo, 15_000, 300, seed=13)
    time.sleep(SESSION_TIMEOUT_S * 2)  # the session times out; the other worker takes over
    taken_over = sum(fences(pg_schema.conninfo, workers.topics.events).values())
    os.kill(zombie.pid, signal.SIGCONT)  # its in-flight batch is applied late, or skipped
    target = feed(workers, pg_schema.conninfo, 5_000, 300, seed=14)
    wait_caught_up(pg_schema.conninfo, workers.topics.events, target, timeout=120)
    assert taken_over > at_stop
    verified(pg_schema.conninfo)


def test_two_workers_then_one_killed(workers: WorkerEnv, pg_schema: PgSchema) -> None:
    first, _second = start(workers), start(workers)
    target = feed(workers, pg_schema.conninfo, 30_000, 500, seed=15)
    wait_progress(pg_schema.conninfo, workers.topics.events, 5_000)
    first.kill()
    wait_caught_up(pg_schema.conninfo, workers.topics.events, target, timeout=120)
    verified(pg_schema.conninfo)


def test_replay_from_offset_zero_changes_nothing_and_pages_answer(
    workers: WorkerEnv, pg_schema: PgSchema
) -> None:
    target = feed(workers, pg_schema.conninfo, 10_000, 200, seed=16)
    proc = start(workers)
    wait_caught_up(pg_schema.conninfo, workers.topics.events, target)
    stop(proc)
    snapshot = _table_digest(pg_schema.conninfo)
    port = "17123"
    workers.group_id = f"{workers.group_id}-replay"  # a new group starts at offset 0
    replay = start(workers, BRAINSTREAM_WORKER_WEB_PORT=port, BRAINSTREAM_API_TOKEN="w-token")
    _wait_committed(workers, target)
    base = f"http://127.0.0.1:{port}"
    types = httpx.get(f"{base}/aggregates/types", params={"window": "7d"}, timeout=10).json()
    bearer = {"Authorization": "Bearer w-token"}
    user = httpx.get(f"{base}/aggregates/users/u1", headers=bearer, timeout=10).json()
    anonymous = httpx.get(f"{base}/aggregates/users/u1", timeout=10)
    wrong = httpx.get(f"{base}/aggregates/users/u1", headers={"Authorization": "Bearer x"})
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    bad = httpx.get(f"{base}/aggregates/types", params={"window": "2w"}, timeout=10)
    stop(replay)
    assert _table_digest(pg_schema.conninfo) == snapshot
    verified(pg_schema.conninfo)
    assert types["window"] == "7d" and types["events"] == 10_000
    assert sum(t["events"] for t in user["totals"].values()) > 0
    assert 'brainstream_worker_events_total{outcome="below_fence"} 10000.0' in metrics
    assert bad.status_code == 400
    assert anonymous.status_code == wrong.status_code == 401  # /types, /metrics stay open
    assert "u1" not in anonymous.text


def _wait_committed(env: WorkerEnv, target: dict[int, int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = committed(env.kafka, env.group_id, env.topics.events, len(target))
        if all(got[p] >= n for p, n in target.items()):
            return
        assert time.monotonic() < deadline, f"replay did not finish: {got} vs {target}"
        time.sleep(0.5)


def _table_digest(conninfo: str) -> tuple[object, ...]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT (SELECT sum(event_count) FROM agg_type_buckets),"
            " (SELECT sum(distinct_users) FROM agg_type_buckets),"
            " (SELECT sum(event_count) FROM agg_user_buckets),"
            " (SELECT count(*) FROM agg_user_buckets)"
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_database_faults_pause_and_retry_without_losing_events(
    workers: WorkerEnv, pg_schema: PgSchema
) -> None:
    app_name = f"bs-worker-{uuid.uuid4().hex[:8]}"
    port = "17124"
    start(
        workers, BRAINSTREAM_WORKER_DB_APPLICATION_NAME=app_name, BRAINSTREAM_WORKER_WEB_PORT=port
    )
    events = make_events(30_000, 500, seed=17)
    copy_raw(pg_schema.conninfo, events)
    progress = 0
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as admin:
        # Five chunks, the worker's sessions killed after each has started to land: a real
        # database fault while more of the stream is still to come. (All at once, a fast worker
        # could finish before the second kill and the wait below would never end.)
        for start_at in range(0, len(events), 6_000):
            produce(workers.kafka, workers.topics.events, events[start_at : start_at + 6_000])
            progress = wait_progress(pg_schema.conninfo, workers.topics.events, progress + 1_000)
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (app_name,),
            )
    produce(workers.kafka, workers.topics.events, [b"not json"])
    target = end_offsets(workers.kafka, workers.topics.events, workers.topics.events_partitions)
    wait_caught_up(pg_schema.conninfo, workers.topics.events, target, timeout=120)
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    verified(pg_schema.conninfo)
    retries = [
        line
        for line in metrics.splitlines()
        if line.startswith("brainstream_worker_db_retries_total")
    ]
    assert retries and sum(float(line.split()[-1]) for line in retries) >= 1
