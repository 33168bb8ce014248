"""``brainstream aggregates rebuild|verify`` and ``brainstream top --once`` on a real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from typer.testing import CliRunner

from brainstream.cli import app
from streams.writer import apply_batch, fold_partition
from tests.fixtures.services import PgSchema, Services
from tests.streams.helpers import accepted_batches, copy_raw, make_events, place

pytestmark = pytest.mark.integration


@pytest.fixture
def env(services: Services, pg_schema: PgSchema, monkeypatch: pytest.MonkeyPatch) -> PgSchema:
    monkeypatch.setenv("BRAINSTREAM_POSTGRES_DSN", services.postgres_dsn)
    monkeypatch.setenv("BRAINSTREAM_POSTGRES_SCHEMA", pg_schema.name)
    return pg_schema


def test_rebuild_verify_and_top(env: PgSchema) -> None:
    placed = place(make_events(400, 20, end=datetime.now(UTC), seed=5, late_fraction=0), 1)
    copy_raw(env.conninfo, placed)
    batches = accepted_batches(placed, "t", 100)
    runner = CliRunner()
    with psycopg.connect(env.conninfo) as conn:
        apply_batch(conn, "aggregates", fold_partition("t", 0, batches[:3]))

    rebuilt = runner.invoke(app, ["aggregates", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "agg_user_days_rebuilt:" in rebuilt.output
    behind = runner.invoke(app, ["aggregates", "verify", "--samples", "3"])
    assert behind.exit_code == 1 and "DIFFERENCES" in behind.output

    with psycopg.connect(env.conninfo) as conn:
        apply_batch(conn, "aggregates", fold_partition("t", 0, batches))
    ok = runner.invoke(app, ["aggregates", "verify"])
    assert ok.exit_code == 0 and "zero differences" in ok.output

    top = runner.invoke(app, ["top", "--window", "24h", "--once"], env={"COLUMNS": "200"})
    assert top.exit_code == 0, top.output
    assert "400" in top.output and "page_view" in top.output
    bad = runner.invoke(app, ["top", "--window", "2w", "--once"])
    assert bad.exit_code == 2
