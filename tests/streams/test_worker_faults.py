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

import httpx
import psycopg
import pytest

from brainstream.dev import default_cache_dir
from brainstream.dev import kafka as dev_kafka
from streams.reference import VerifyReport, verify
from tests.fixtures.services import PgSchema
from tests.streams.helpers import (
    WorkerEnv,
    accepted_batches,
    committed,
    copy_raw,
    end_offsets,
    fences,
    make_events,
    place,
    produce,
    produce_accepted,
    stop,
    wait_caught_up,
    wait_progress,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SESSION_TIMEOUT_S = 6


@pytest.fixture
def workers(worker_env: WorkerEnv) -> WorkerEnv:
    return worker_env


def start(env: WorkerEnv, **extra: str) -> subprocess.Popen[bytes]:
    proc = env.start(env.log_dir / f"worker-{len(env.procs)}.log", **extra)
    env.procs.append(proc)
    return proc


def feed(
    env: WorkerEnv, conninfo: str, n: int, users: int, seed: int, per_batch: int = 500
) -> dict[int, int]:
    """Store ``n`` events in the raw table and forward them to the accepted stream as the sink
    does, every fifth batch twice (a sink crash between its commit and its produce), plus one
    malformed record; returns the source end offsets the fences must reach."""
    placed = place(make_events(n, users, seed=seed), env.topics.events_partitions, env.source_next)
    copy_raw(conninfo, placed)
    batches = accepted_batches(placed, env.topics.events, per_batch)
    twice = [b for i, b in enumerate(batches) for _ in range(2 if i % 5 == 0 else 1)]
    env.reforwarded += sum(len(b) for i, b in enumerate(batches) if i % 5 == 0)
    produce_accepted(env.kafka, env.topics.accepted, twice)
    produce(env.kafka, env.topics.accepted, [b"not json"])
    return dict(env.source_next)


def verified(conninfo: str) -> VerifyReport:
    with psycopg.connect(conninfo) as conn:
        report = verify(conn)
    assert report.ok, (report.differences, report.samples)
    return report


def test_five_sigkills_mid_stream(workers: WorkerEnv, pg_schema: PgSchema) -> None:
    """Each kill lands while a chunk is being applied (small takes: many transactions)."""
    proc = start(workers, BRAINSTREAM_WORKER_TAKE_MAX="2")
    progress = 0
    for chunk in range(5):
        feed(workers, pg_schema.conninfo, 20_000, 1_000, seed=11 + chunk, per_batch=250)
        progress = wait_progress(pg_schema.conninfo, workers.topics.events, progress + 1_000)
        proc.kill()
        proc.wait()
        proc = start(workers, BRAINSTREAM_WORKER_TAKE_MAX="2")
    target = feed(workers, pg_schema.conninfo, 5_000, 1_000, seed=20)
    assert progress < sum(target.values()), "the stream ended before the fifth kill"
    wait_caught_up(pg_schema.conninfo, workers.topics.events, target, timeout=240)
    stop(proc)
    report = verified(pg_schema.conninfo)
    assert report.rows["agg_user_days"] > 1_000


def test_sigstopped_zombie_resumes_after_a_takeover(
    workers: WorkerEnv, pg_schema: PgSchema
) -> None:
    feed(workers, pg_schema.conninfo, 15_000, 300, seed=12, per_batch=100)
    zombie = start(workers, BRAINSTREAM_WORKER_TAKE_MAX="1")
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
    _wait_committed(workers)
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
    in_7d = _count_since(pg_schema.conninfo, types["since"])
    assert types["window"] == "7d" and types["events"] == in_7d > 9_000
    assert sum(t["events"] for t in user["totals"].values()) > 0
    # Every event arrived twice or more (re-forwarded batches, then the replay): none counted.
    forwarded = 10_000 + workers.reforwarded
    assert f'brainstream_worker_events_total{{outcome="below_fence"}} {forwarded}.0' in metrics
    assert 'brainstream_worker_records_total{outcome="invalid"} 1.0' in metrics
    assert bad.status_code == 400
    assert anonymous.status_code == wrong.status_code == 401  # /types, /metrics stay open
    assert "u1" not in anonymous.text


def test_offsets_reset_to_earliest_with_kafkas_consumer_groups_tool(
    workers: WorkerEnv, pg_schema: PgSchema
) -> None:
    """An operator rewinds the worker group with Kafka's own tool: the fences skip it all."""
    target = feed(workers, pg_schema.conninfo, 8_000, 200, seed=18)
    proc = start(workers)
    wait_caught_up(pg_schema.conninfo, workers.topics.events, target)
    _wait_committed(workers)
    stop(proc)
    snapshot = _table_digest(pg_schema.conninfo)
    libs = dev_kafka.resolve_tools(default_cache_dir())
    out = dev_kafka.run_tool(
        libs,
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        [
            "--bootstrap-server",
            workers.kafka.bootstrap_servers,
            "--group",
            workers.group_id,
            "--topic",
            workers.topics.accepted,
            "--reset-offsets",
            "--to-earliest",
            "--execute",
        ],
    ).stdout
    assert workers.topics.accepted in out
    rewound = committed(
        workers.kafka, workers.group_id, workers.topics.accepted, workers.topics.events_partitions
    )
    assert set(rewound.values()) == {0}
    more = feed(workers, pg_schema.conninfo, 2_000, 200, seed=19)
    proc = start(workers)
    wait_caught_up(pg_schema.conninfo, workers.topics.events, more)
    _wait_committed(workers)
    stop(proc)
    assert _table_digest(pg_schema.conninfo) != snapshot  # the new events, and only them
    verified(pg_schema.conninfo)


def _count_since(conninfo: str, since: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM analytics_events WHERE occurred_at >= %s", (since,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _wait_committed(env: WorkerEnv, timeout: float = 120) -> None:
    parts = env.topics.events_partitions
    target = end_offsets(env.kafka, env.topics.accepted, parts)
    deadline = time.monotonic() + timeout
    while True:
        got = committed(env.kafka, env.group_id, env.topics.accepted, parts)
        if all(got[p] >= n for p, n in target.items()):
            return
        assert time.monotonic() < deadline, f"the group did not commit: {got} vs {target}"
        time.sleep(0.5)


def _table_digest(conninfo: str) -> tuple[object, ...]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT (SELECT sum(event_count) FROM agg_type_buckets),"
            " (SELECT sum(event_count) FROM agg_user_days),"
            " (SELECT sum(distinct_users) FROM agg_type_buckets),"
            " (SELECT array_agg(hours ORDER BY user_id, event_type, day) FROM agg_user_days),"
            " (SELECT count(*) FROM agg_user_days)"
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
    progress, target = 0, {}
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as admin:
        # Five chunks, the worker's sessions killed after each has started to land: a real
        # database fault while more of the stream is still to come. (All at once, a fast worker
        # could finish before the second kill and the wait below would never end.)
        for chunk in range(5):
            target = feed(workers, pg_schema.conninfo, 6_000, 500, seed=17 + chunk, per_batch=200)
            progress = wait_progress(pg_schema.conninfo, workers.topics.events, progress + 500)
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (app_name,),
            )
    wait_caught_up(pg_schema.conninfo, workers.topics.events, target, timeout=120)
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    verified(pg_schema.conninfo)
    retries = [
        line
        for line in metrics.splitlines()
        if line.startswith("brainstream_worker_db_retries_total")
    ]
    assert retries and sum(float(line.split()[-1]) for line in retries) >= 1


def test_sigterm_while_the_database_is_down_stops_the_worker_and_loses_nothing(
    workers: WorkerEnv, pg_schema: PgSchema
) -> None:
    # Faust waits at shutdown for every record it handed out to be acked; a record whose apply
    # retries a database fault was never acked, so a worker that lost Postgres did not stop.
    target = feed(workers, pg_schema.conninfo, 3_000, 50, seed=41)
    log = workers.log_dir / "worker-db-down.log"
    worker = workers.start(log, BRAINSTREAM_POSTGRES_DSN="postgresql://x:y@127.0.0.1:1/nothing")
    workers.procs.append(worker)
    deadline = time.monotonic() + 60
    while "database fault" not in log.read_text():
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker ignored SIGTERM with the database down; see {log}")
    assert "not applied" in log.read_text()
    start(workers)  # the same group: the records were not committed, so they are read again
    wait_caught_up(pg_schema.conninfo, workers.topics.events, target)
    verified(pg_schema.conninfo)
