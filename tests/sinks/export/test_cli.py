"""``brainstream export run`` and ``brainstream replay --to raw`` end to end (real services)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from brainstream.cli import export as export_cli
from schemas.config import KafkaSettings, TopicSettings
from sinks.export import load
from tests.fixtures.services import PgSchema, Services
from tests.sinks.export.helpers import events, produce

pytestmark = pytest.mark.integration


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    export_cli.register(app)
    return app


def _env(services: Services, topics: TopicSettings, pg: PgSchema, out: Path) -> dict[str, str]:
    return {
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": services.kafka.bootstrap_servers,
        "BRAINSTREAM_POSTGRES_DSN": services.postgres_dsn,
        "BRAINSTREAM_POSTGRES_SCHEMA": pg.name,
        "BRAINSTREAM_TOPIC_EVENTS": topics.events,
        "BRAINSTREAM_TOPIC_ERASURES": topics.erasures,
        "BRAINSTREAM_EXPORT_OUTPUT_DIR": str(out),
        "BRAINSTREAM_EXPORT_PSEUDONYM_KEY": "cli-test-key",
        "BRAINSTREAM_EXPORT_SOURCE": "log",  # no sink ran (the accepted source: test_accepted)
    }


def test_export_run_and_replay_raw_from_the_command_line(
    cli: typer.Typer,
    services: Services,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    tmp_path: Path,
) -> None:
    produce(kafka_settings, topics.events, events(900, users=9))
    env = _env(services, topics, pg_schema, tmp_path)
    runner = CliRunner()

    args = ["export", "run", "cli", "--format", "parquet", "--format", "jsonl"]
    args += ["--jsonl-compression", "gzip", "--type", "login", "--pseudonymise", "--no-progress"]
    done = runner.invoke(cli, args, env=env)
    assert done.exit_code == 0, done.output
    manifest = load(tmp_path / "cli")
    assert manifest.exported == 90 and manifest.pseudonymised
    names = {f.name for f in manifest.files}
    assert names == {"events.parquet", "events.jsonl.gz", "login.typed.parquet"}

    again = runner.invoke(cli, ["export", "run", "cli", "--no-progress"], env=env)
    assert again.exit_code == 1 and "already exists" in again.output

    replayed = runner.invoke(cli, ["replay", "--to", "raw", "--no-progress"], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert "900 inserted" in replayed.output
    with psycopg.connect(pg_schema.conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM analytics_events").fetchone() == (900,)

    bad = runner.invoke(cli, ["replay", "--to", "elsewhere"], env=env)
    assert bad.exit_code == 2
    for wrong in (["../up"], ["x", "--since", "yesterday"], ["x", "--end-offset", "0:5"]):
        refused = runner.invoke(cli, ["export", "run", *wrong], env=env)
        assert refused.exit_code == 2, refused.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli"]
