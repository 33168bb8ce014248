"""``brainstream worker``, ``top`` and ``aggregates rebuild|verify``: the stream aggregates."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import psycopg
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from brainstream.settings import Settings, WorkerSettings
from schemas.config import check_credentials, check_topic_access

console = Console()
aggregates_app = typer.Typer(help="The aggregate tables: rebuild the reference, verify.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("worker")(worker)
    app.command("top")(top)
    app.add_typer(aggregates_app, name="aggregates")


def worker(
    ctx: typer.Context,
    web_port: int | None = typer.Option(None, help="Faust web port (default 6066)."),
) -> None:
    """Run an aggregate worker (a Faust worker; SIGTERM finishes the in-flight batch).

    Its logs, Faust's included, follow --log-format; the level is --log-level when given,
    else BRAINSTREAM_WORKER_LOG_LEVEL."""
    from faust.worker import Worker

    from brainstream.cli.access import guard_listener
    from eventlog.runtime import runtime_tuning
    from streams.app import create_app

    settings, config = Settings(), WorkerSettings()
    if web_port is not None:
        config.web_port = web_port
    if config.web_enabled:
        guard_listener("worker web server", config.web_host, settings.api_token)
    check_credentials(settings.kafka)  # aiokafka would log the refusal and fail to bootstrap
    # and it only logs a topic refused by the authorizer, then waits: ask first
    check_topic_access(
        settings.kafka, [settings.topics.accepted, settings.topics.erasures], "reading"
    )
    app = create_app(
        config,
        settings.kafka,
        settings.topics,
        settings.postgres.conninfo,
        api_token=settings.api_token,
    )
    if ctx.parent is None or ctx.parent.params.get("log_level") is None:
        logging.getLogger().setLevel(config.log_level.upper())
    # mode's Worker would otherwise dictConfig the root logger (its own colour handler in place
    # of the one --log-format installed) and redirect stdout into the log
    runner = Worker(app, quiet=True, override_logging=False)
    # Faust's terminal spinner ends by writing backspaces and a show-cursor escape to stdout,
    # terminal or not: bytes in the middle of a service's log lines
    runner.spinner = None
    with runtime_tuning(config.gc_gen0_threshold, None):
        runner.execute_from_commandline()


def top(
    window: str = typer.Option("1h", help="5m, 1h, 24h or 7d."),
    interval: float = typer.Option(2.0, help="Seconds between refreshes."),
    once: bool = typer.Option(False, help="Print the table once and exit."),
) -> None:
    """A live table of events and distinct users per type over a rolling window."""
    from streams import queries
    from streams.errors import UnknownWindow

    try:
        w = queries.window(window)
    except UnknownWindow as exc:
        raise typer.BadParameter(str(exc), param_hint="--window") from None
    with psycopg.connect(Settings().postgres.conninfo, autocommit=True) as conn:
        if once:
            console.print(_render(queries.types_json(conn, w)))
            return
        with Live(console=console, refresh_per_second=4) as live:
            while True:
                live.update(_render(queries.types_json(conn, w)))
                time.sleep(interval)


def _render(doc: dict[str, object]) -> Group:
    table = Table(
        title=f"brainstream top — last {doc['window']} (since {doc['since']})",
        title_justify="left",
    )
    table.add_column("event type")
    table.add_column("events", justify="right")
    table.add_column("distinct users", justify="right")
    types = doc["types"]
    assert isinstance(types, dict)
    for name, counts in types.items():
        table.add_row(name, str(counts["events"]), str(counts["users"]))
    table.add_row("[bold]all", f"[bold]{doc['events']}", f"[bold]{doc['users']}")
    return Group(table, f"[dim]{datetime.now(UTC).isoformat(timespec='seconds')}[/dim]")


@aggregates_app.command("rebuild")
def aggregates_rebuild() -> None:
    """Recompute every aggregate from analytics_events into the *_rebuilt tables (by SQL)."""
    from streams.reference import rebuild

    with psycopg.connect(Settings().postgres.conninfo) as conn, conn.transaction():
        rows = rebuild(conn)
    for table, n in rows.items():
        console.print(f"{table}_rebuilt: {n} row(s)")


@aggregates_app.command("verify")
def aggregates_verify(
    samples: int = typer.Option(20, help="Show at most this many differing rows."),
    rebuild_first: bool = typer.Option(True, help="Rebuild the reference in the same snapshot."),
) -> None:
    """Compare the streamed aggregates with the SQL reference; exits 1 on any difference."""
    from streams.reference import verify

    with psycopg.connect(Settings().postgres.conninfo) as conn:
        report = verify(conn, fresh=rebuild_first, samples=samples)
    for d in report.samples:
        console.print(f"{d.table} {d.key}: streamed={d.streamed} rebuilt={d.rebuilt}")
    for table, n in report.differences.items():
        console.print(f"{table}: {report.rows.get(table, '?')} row(s), {n} difference(s)")
    console.print("[green]zero differences[/green]" if report.ok else "[red]DIFFERENCES[/red]")
    raise typer.Exit(0 if report.ok else 1)
