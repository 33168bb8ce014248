"""The issue's acceptance on a 200k-event range: export == analytics_events, in both formats;
byte-identical reruns; a SIGKILLed export leaves nothing a reader would take for complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from brainstream.topic_admin import delete_topics, ensure_topics
from schemas.config import KafkaSettings, TopicSettings
from sinks.export import ExportConfig, ExportRequest, LogRange, export, load
from sinks.export.dataset import PARTIAL_SUFFIX
from sinks.export.manifest import MANIFEST_FILE
from sinks.replay import replay_to_raw
from tests.fixtures.services import REPO, PgSchema, Services
from tests.sinks.export.helpers import events, jsonl_rows, produce, reader

pytestmark = pytest.mark.integration

EVENTS = 200_000


@pytest.fixture(scope="module")
def big_topics(services: Services) -> Iterator[TopicSettings]:
    """One topic of 200k events (20k users) shared by this module's tests (read-only)."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    names = TopicSettings(
        events=f"{prefix}.events",
        dlq=f"{prefix}.events.dlq",
        erasures=f"{prefix}.erasures",
        events_partitions=3,
    )
    ensure_topics(services.kafka, names)
    produce(services.kafka, names.events, events(EVENTS, users=20_000))
    yield names
    delete_topics(services.kafka, [names.events, names.dlq, names.accepted, names.erasures])


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    props = row["properties"]
    props = json.loads(props) if isinstance(props, str) else props
    moment = row["occurred_at"]
    if isinstance(moment, str):
        moment = moment.replace("Z", "+00:00")
    else:
        moment = moment.isoformat(timespec="microseconds")
    return (
        str(row["event_id"]),
        row["type"],
        row["user_id"],
        moment,
        row["source"],
        row["schema_version"],
        json.dumps(props, sort_keys=True),
        row["kafka_partition"],
        row["kafka_offset"],
    )


_TABLE_ROWS = """
SELECT event_id::text AS event_id, event_type AS type, user_id, occurred_at, source,
       schema_version, properties, kafka_partition, kafka_offset
FROM analytics_events
"""


def test_200k_export_equals_analytics_events_in_both_formats(
    kafka_settings: KafkaSettings, big_topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    config = ExportConfig(output_dir=tmp_path, source="log")  # no sink ran: the log as it is
    with reader(kafka_settings, big_topics, config) as log_reader:
        replayed = replay_to_raw(log_reader, LogRange(), pg_schema.conninfo)
    assert replayed.read == replayed.inserted == EVENTS

    request = ExportRequest(name="a", formats=("parquet", "jsonl"))
    first = export(request, config, kafka_settings.librdkafka(), big_topics, pg_schema.conninfo)
    assert first.exported == EVENTS

    with psycopg.connect(pg_schema.conninfo) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.row_factory = psycopg.rows.dict_row  # type: ignore[assignment]
        table = sorted(map(_row_key, cur.execute(_TABLE_ROWS)))
    assert len(table) == EVENTS
    parquet = pq.read_table(tmp_path / "a" / "events.parquet").to_pylist()
    assert sorted(map(_row_key, parquet)) == table
    del parquet
    assert sorted(map(_row_key, jsonl_rows(tmp_path / "a" / "events.jsonl"))) == table

    again = request.model_copy(update={"name": "b"})
    second = export(again, config, kafka_settings.librdkafka(), big_topics, pg_schema.conninfo)
    assert second.content_hash == first.content_hash
    for name in ("events.parquet", "events.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


_KILLABLE = """
import sys
from pydantic import SecretStr
from schemas.config import KafkaSettings, TopicSettings
from sinks.export import ExportConfig, ExportRequest, export
kafka = KafkaSettings(bootstrap_servers=sys.argv[1])
topics = TopicSettings(events=sys.argv[2], erasures=sys.argv[3])
config = ExportConfig(output_dir=sys.argv[4], row_group_rows=1_000, poll_batch=200, source="log")
request = ExportRequest(name="killed", formats=("parquet", "jsonl"))
export(request, config, kafka.librdkafka(), topics, None)
"""


def test_sigkilled_export_leaves_no_dataset_that_looks_complete(
    kafka_settings: KafkaSettings, big_topics: TopicSettings, tmp_path: Path
) -> None:
    args = [kafka_settings.bootstrap_servers, big_topics.events, big_topics.erasures, tmp_path]
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, *map(str, args)], cwd=REPO, env={**os.environ}
    )
    partial = tmp_path / f"killed{PARTIAL_SUFFIX}"
    data = partial / "events.parquet"
    deadline = time.monotonic() + 60
    while not (data.exists() and data.stat().st_size > 100_000):
        assert proc.poll() is None, "the export ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    workers = _children(proc.pid)
    assert workers, "a 200k-event export shapes records in worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, "export workers outlived the killed export"
        time.sleep(0.1)

    assert not (tmp_path / "killed").exists()
    assert not list(tmp_path.rglob(MANIFEST_FILE))
    assert [p.name for p in tmp_path.iterdir()] == [partial.name]
    with pytest.raises(Exception, match=r"footer|magic|Parquet"):
        pq.read_table(data)

    # The next export of that name starts over and completes.
    config = ExportConfig(output_dir=tmp_path, row_group_rows=1_000, source="log")
    request = ExportRequest(name="killed", range=LogRange(end_offsets={0: 10, 1: 10, 2: 10}))
    manifest = export(request, config, kafka_settings.librdkafka(), big_topics, None)
    assert manifest.exported == 30
    assert load(tmp_path / "killed") == manifest
    assert [p.name for p in tmp_path.iterdir()] == ["killed"]


def test_interrupted_export_removes_its_partial_dataset(
    kafka_settings: KafkaSettings, big_topics: TopicSettings, tmp_path: Path
) -> None:
    args = [kafka_settings.bootstrap_servers, big_topics.events, big_topics.erasures, tmp_path]
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, *map(str, args)],
        cwd=REPO,
        env={**os.environ},
        start_new_session=True,
        stderr=subprocess.PIPE,
    )
    data = tmp_path / f"killed{PARTIAL_SUFFIX}" / "events.parquet"
    deadline = time.monotonic() + 60
    while not (data.exists() and data.stat().st_size > 100_000):
        assert proc.poll() is None, "the export ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group, workers included
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err
    assert list(tmp_path.iterdir()) == []
