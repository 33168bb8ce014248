"""Acceptance of the forwarding under faults (real broker and database, the sink as a process):
SIGKILLs between the database commit and the produce of the accepted batch, and a zombie sink
(SIGSTOP past the session timeout, then SIGCONT). Whatever happens, the accepted stream folded
behind a source-offset fence equals the raw table, and every record forwarded again says
exactly what was said the first time over its range."""

from __future__ import annotations

import random
import re
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from schemas.config import KafkaSettings, TopicSettings
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema, Services
from tests.sinks.accepted import fold, read_accepted, stored
from tests.sinks.conftest import Record, count_rows, event_records, produce, wait_for
from tests.sinks.faults import sink_env, sink_process, stop_sink, wait_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TYPES = ["page_view", "task_created", "search", "login", "logout", "file_upload"]
_BATCH = re.compile(r"duplicates=(\d+) erased=\d+ dlq=\d+ accepted=(\d+)")


def _records(n: int, seed: int) -> tuple[list[Record], int]:
    """``n`` events plus 2% of them produced again (same bytes), shuffled in; distinct count."""
    rng = random.Random(seed)
    events = [sample_event(TYPES[i % len(TYPES)], user_id=f"u{i % 211}") for i in range(n)]
    records = event_records(events)
    for record in rng.sample(records, n // 50):
        records.insert(rng.randrange(len(records) + 1), record)
    return records, n


def test_sigkills_between_the_commit_and_the_forward_forward_the_same_content(
    services: Services,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    tmp_path: Path,
) -> None:
    rng = random.Random(20261130)
    records, distinct = _records(12_000, 12)
    group, log = f"fwd-kill-{uuid.uuid4().hex[:8]}", tmp_path / "sink.log"
    env = sink_env(
        kafka_settings, topics, services.postgres_dsn, pg_schema.name, group, batch_max_records=500
    )
    chunk = len(records) // 7 + 1
    for round_ in range(7):
        produce(kafka_settings, topics.events, records[round_ * chunk : (round_ + 1) * chunk])
        if round_ < 5:  # killed after batch N's commit, before its accepted batch is produced
            with sink_process(env, log, crash_after_batch=rng.randint(1, 4)) as proc:
                assert proc.wait(120) == -signal.SIGKILL
        else:  # and at a random moment (e.g. after the produce, before the offset commit)
            with sink_process(env, log) as proc:
                time.sleep(rng.uniform(1.0, 2.5))
                proc.kill()
                proc.wait(30)
    with sink_process(env, log) as proc:
        wait_caught_up(kafka_settings, group, topics.events, timeout=240)
        assert stop_sink(proc) == 0

    assert count_rows(pg_schema.conninfo) == distinct
    folded = fold(read_accepted(kafka_settings, topics.accepted))
    assert folded.counted == stored(pg_schema.conninfo)
    # The restarts re-processed batches whose rows the killed sink had committed: they were
    # skipped as stored, yet forwarded, because their rows carry these very offsets.
    batches = [(int(d), int(a)) for d, a in _BATCH.findall(log.read_text(errors="replace"))]
    assert any(dup > 0 and acc > 0 for dup, acc in batches), "no killed batch was re-processed"


def test_a_zombie_sink_forwards_nothing_a_fence_would_not_skip(
    services: Services,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    tmp_path: Path,
) -> None:
    records, distinct = _records(12_000, 13)
    group = f"fwd-zombie-{uuid.uuid4().hex[:8]}"
    env = sink_env(
        kafka_settings,
        topics,
        services.postgres_dsn,
        pg_schema.name,
        group,
        batch_max_records=300,
        batch_max_seconds=0.5,
    )
    zombie_log, other_log = tmp_path / "zombie.log", tmp_path / "other.log"
    feeding = threading.Thread(target=_trickle, args=(kafka_settings, topics.events, records))
    with sink_process({**env, "BRAINSTREAM_SINK_INSTANCE_ID": f"{group}-a"}, zombie_log) as a:
        feeding.start()
        wait_for(lambda: count_rows(pg_schema.conninfo) > 1500, what="the first sink's rows")
        a.send_signal(signal.SIGSTOP)  # mid-stream: a batch is being read or written
        try:
            with sink_process({**env, "BRAINSTREAM_SINK_INSTANCE_ID": f"{group}-b"}, other_log):
                time.sleep(9)  # past the 6 s session timeout: b owns every partition
                written = other_log.stat().st_size
                a.send_signal(signal.SIGCONT)  # the zombie wakes and finishes what it held
                feeding.join(120)
                wait_caught_up(kafka_settings, group, topics.events, timeout=240)
                time.sleep(2)
        finally:
            a.send_signal(signal.SIGCONT)
        assert other_log.stat().st_size > written, "the second sink did no work"
        assert stop_sink(a) == 0
    # The zombie settled what it held when it stopped: written, forwarded, offsets refused.
    assert "offset commit refused" in zombie_log.read_text(errors="replace")

    assert count_rows(pg_schema.conninfo) == distinct
    folded = fold(read_accepted(kafka_settings, topics.accepted))
    assert folded.counted == stored(pg_schema.conninfo)


def _trickle(kafka: KafkaSettings, topic: str, records: list[Record]) -> None:
    for start in range(0, len(records), 600):
        produce(kafka, topic, records[start : start + 600])
        time.sleep(0.3)
