"""The main job: ``brainstream demo`` runs SDK -> Kafka -> sink + worker -> Postgres end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from schemas.config import TopicSettings
from tests.fixtures.services import PgSchema, Services

pytestmark = pytest.mark.integration


def test_demo_lands_every_event_in_both_projections(
    services: Services, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": services.kafka.bootstrap_servers,
        "BRAINSTREAM_POSTGRES_DSN": services.postgres_dsn,
        "BRAINSTREAM_POSTGRES_SCHEMA": pg_schema.name,
        "BRAINSTREAM_TOPIC_EVENTS": topics.events,
        "BRAINSTREAM_TOPIC_DLQ": topics.dlq,
        "BRAINSTREAM_TOPIC_ACCEPTED": topics.accepted,
        "BRAINSTREAM_TOPIC_ERASURES": topics.erasures,
        "BRAINSTREAM_SINK_GROUP_ID": f"demo-sink-{run}",
        "BRAINSTREAM_WORKER_GROUP_ID": f"demo-worker-{run}",
        "BRAINSTREAM_WORKER_WEB_ENABLED": "false",
        "BRAINSTREAM_SDK_SPOOL_DIR": str(tmp_path / "spool"),
        "BRAINSTREAM_DEV_DIR": str(tmp_path),
    }
    args = ["--rate", "200", "--users", "30", "--duration", "3", "--settle", "120"]
    done = subprocess.run(
        [sys.executable, "-m", "brainstream.cli", "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    logs = "".join(p.read_text()[-2000:] for p in sorted((tmp_path / "logs").glob("*.log")))
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{logs}"
    assert "zero differences" in done.stdout
    with psycopg.connect(pg_schema.conninfo) as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT event_type) FROM analytics_events")
        count, kinds = rows.fetchone() or (0, 0)
        counted = conn.execute(
            "SELECT sum(event_count) FROM agg_type_buckets WHERE granularity = 'day'"
        ).fetchone()
    assert count == 600  # 200/s for 3 s, every one accounted for by the SDK
    assert kinds >= 9
    assert counted == (count,)
