"""``brainstream demo``: the whole pipeline on synthetic traffic, watched live.

Starts the local services (or uses ``BRAINSTREAM_*``), then the raw sink, the aggregate worker
and the demo producer as child processes, and shows live aggregates and rows landing in
Postgres until the producer is done and every projection has caught up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from brainstream.settings import Settings

console = Console()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@dataclass
class Snapshot:
    raw_rows: dict[str, int] = field(default_factory=dict)
    agg_counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def raw_total(self) -> int:
        return sum(self.raw_rows.values())

    @property
    def agg_total(self) -> int:
        return sum(c for c, _ in self.agg_counts.values())


def demo(
    rate: int = typer.Option(300, help="Events per second produced."),
    users: int = typer.Option(500, help="Distinct synthetic users."),
    duration: int = typer.Option(60, help="Seconds of traffic."),
    settle: int = typer.Option(90, help="Seconds to wait for sink and worker to catch up."),
) -> None:
    """Run the whole pipeline on synthetic traffic, showing live aggregates and rows."""
    settings = _prepare()
    env = {
        **os.environ,
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BRAINSTREAM_POSTGRES_DSN": settings.postgres.server_dsn,
    }
    logs = Path(os.environ.get("BRAINSTREAM_DEV_DIR") or ".brainstream") / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with (
        _child("sink", ["sink"], env, logs),
        _child("worker", ["worker"], env, logs),
        _child(
            "producer",
            ["produce", "--rate", str(rate), "--users", str(users), "--duration", str(duration)],
            env,
            logs,
        ) as producer,
    ):
        snap = _watch(settings, producer, started, settle)
    ok = snap.raw_total > 0 and snap.raw_total == snap.agg_total
    console.print(
        f"[bold]{snap.raw_total}[/bold] events landed in analytics_events, "
        f"[bold]{snap.agg_total}[/bold] counted in the aggregates "
        f"({'consistent' if ok else 'NOT consistent'}); logs in {logs}/"
    )
    console.print("[dim]every bucket of every granularity against the SQL recomputation:[/dim]")
    verified = subprocess.run(
        [sys.executable, "-m", "brainstream.cli", "aggregates", "verify"], env=env, check=False
    )
    raise typer.Exit(0 if ok and verified.returncode == 0 else 1)


def _prepare() -> Settings:
    settings = Settings()
    explicit = os.environ.get("BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS") and os.environ.get(
        "BRAINSTREAM_POSTGRES_DSN"
    )
    if not explicit:
        from brainstream import dev

        services = dev.up(log=lambda msg: console.print(f"[dim]{msg}[/dim]"))
        settings.kafka.bootstrap_servers = services.kafka_bootstrap
        os.environ["BRAINSTREAM_POSTGRES_DSN"] = services.postgres_dsn
        settings = Settings(kafka=settings.kafka)
    from brainstream.migrate import migrate
    from brainstream.topic_admin import ensure_topics

    ensure_topics(settings.kafka, settings.topics)
    migrate(settings.postgres.server_dsn, settings.postgres.db_schema)
    return settings


@contextmanager
def _child(
    name: str, args: list[str], env: dict[str, str], logs: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with (logs / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "brainstream.cli", *args], env=env, stdout=log, stderr=log
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _watch(
    settings: Settings, producer: subprocess.Popen[bytes], started: float, settle: int
) -> Snapshot:
    snap, done_at, last_change = Snapshot(), None, time.monotonic()
    with (
        psycopg.connect(settings.postgres.conninfo, autocommit=True) as conn,
        Live(console=console, refresh_per_second=2) as live,
    ):
        while True:
            new = _snapshot(conn, started)
            if (new.raw_total, new.agg_total) != (snap.raw_total, snap.agg_total):
                last_change = time.monotonic()
            snap = new
            if done_at is None and producer.poll() is not None:
                done_at = time.monotonic()
            live.update(_render(snap, producer.poll() is None))
            if done_at is not None:
                caught_up = snap.raw_total == snap.agg_total and time.monotonic() - last_change > 5
                if caught_up or time.monotonic() - done_at > settle:
                    return snap
            time.sleep(1.0)


def _snapshot(conn: psycopg.Connection[tuple[object, ...]], started: float) -> Snapshot:
    """Raw rows and aggregated counts over the same event-time window (this run's minutes)."""
    since = (started,)
    raw = conn.execute(
        "SELECT event_type, count(*) FROM analytics_events "
        "WHERE occurred_at >= date_trunc('minute', to_timestamp(%s)) GROUP BY 1",
        since,
    ).fetchall()
    agg = conn.execute(
        "SELECT m.event_type, sum(m.event_count)::bigint, "
        "  coalesce(max(d.distinct_users), 0)::bigint "
        "FROM agg_type_buckets m LEFT JOIN agg_type_buckets d "
        "  ON d.granularity = 'day' AND d.event_type = m.event_type "
        "  AND d.bucket = date_trunc('day', now(), 'UTC') "
        "WHERE m.granularity = 'minute' AND m.bucket >= date_trunc('minute', to_timestamp(%s)) "
        "GROUP BY 1",
        since,
    ).fetchall()
    return Snapshot(
        raw_rows={str(t): int(str(n)) for t, n in raw},
        agg_counts={str(t): (int(str(c)), int(str(u))) for t, c, u in agg},
    )


def _render(snap: Snapshot, producing: bool) -> Group:
    table = Table(title="brainstream — live, events since this run started", title_justify="left")
    table.add_column("event type")
    table.add_column("rows in analytics_events", justify="right")
    table.add_column("aggregated events", justify="right")
    table.add_column("distinct users today", justify="right")
    for name in sorted(set(snap.raw_rows) | set(snap.agg_counts)):
        count, users = snap.agg_counts.get(name, (0, 0))
        table.add_row(name, str(snap.raw_rows.get(name, 0)), str(count), str(users))
    table.add_row("[bold]total", f"[bold]{snap.raw_total}", f"[bold]{snap.agg_total}", "")
    state = "producing…" if producing else "producer done, waiting for sink and worker…"
    return Group(table, f"[dim]{state}[/dim]\n")
