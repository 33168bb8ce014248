"""``brainstream sink``, ``dlq …``, ``retention run``, ``erase-user`` and ``events …``."""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from brainstream.settings import RetentionSettings, Settings, SinkSettings, WorkerSettings
from schemas.config import check_credentials

console = Console()
log = logging.getLogger(__name__)
sink_app = typer.Typer(
    help="Raw-event sink: Kafka -> analytics_events (run without a sub-command to start it).",
    invoke_without_command=True,
)
dlq_app = typer.Typer(help="Dead-letter topic: inspect and re-submit.")
retention_app = typer.Typer(help="Retention of the raw table (drops whole day partitions).")
events_app = typer.Typer(help="Query the raw table (index-backed helpers).")


def register(app: typer.Typer) -> None:
    app.add_typer(sink_app, name="sink")
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(retention_app, name="retention")
    app.add_typer(events_app, name="events")
    app.command("erase-user")(erase_user)


@sink_app.callback()
def sink_run(
    ctx: typer.Context,
    metrics_port: int | None = typer.Option(
        None, help="Serve /metrics and /health here (default BRAINSTREAM_SINK_METRICS_PORT)."
    ),
) -> None:
    """Run the sink until SIGTERM/SIGINT (the in-flight batch is finished and committed)."""
    if ctx.invoked_subcommand is not None:
        return
    from schemas.http import serve
    from sinks.consumer import Sink

    settings, config = Settings(), SinkSettings()
    if metrics_port is not None:
        config.metrics_port = metrics_port
    check_credentials(settings.kafka)
    sink = Sink(config, settings.kafka.librdkafka(), settings.topics, settings.postgres.conninfo)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = None
    if config.metrics_port is not None:
        server = serve(
            sink.metrics.registry,
            sink.health,
            config.metrics_port,
            config.metrics_host,
            name="sink-http",
        )
    log.info("sink %s consuming %s", config.group_id, settings.topics.events)
    try:
        sink.run(stop)
    finally:
        if server is not None:
            server.shutdown()


@sink_app.command("health")
def sink_health(
    port: int = typer.Option(9101, help="The sink's metrics port."),
    host: str = typer.Option("127.0.0.1"),
) -> None:
    """Ask a running sink's /health endpoint; exits 0 when healthy, 1 otherwise."""
    import httpx

    try:
        response = httpx.get(f"http://{host}:{port}/health", timeout=5.0)
    except httpx.HTTPError as exc:
        console.print(f"unreachable: {type(exc).__name__}")
        raise typer.Exit(1) from None
    console.print(response.text)
    raise typer.Exit(0 if response.status_code == 200 else 1)


@dlq_app.command("inspect")
def dlq_inspect(
    limit: int = typer.Option(100, help="At most this many records."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Show the dead letters: source coordinates, stage, error class and field errors (none of
    an erased user)."""
    from sinks.dlq_admin import inspect

    settings = Settings()
    check_credentials(settings.kafka)
    erased = _erased(settings)
    letters = inspect(settings.kafka.librdkafka(), settings.topics.dlq, limit, erased=erased)
    if as_json:
        for d in letters:
            typer.echo(json.dumps({"partition": d.partition, "offset": d.offset, **d.info}))
        return
    table = Table("source", "stage", "error", "fields", "failed at")
    for d in letters:
        source = f"{d.info.get('topic')}[{d.info.get('partition')}]@{d.info.get('offset')}"
        fields = ", ".join(f"{e['field']}:{e['rule']}" for e in d.errors)
        table.add_row(
            source, d.info.get("stage"), d.info.get("error.class"), fields, d.info.get("failed_at")
        )
    console.print(table)
    console.print(f"{len(letters)} dead letter(s) shown")


@dlq_app.command("replay")
def dlq_replay(
    stage: list[str] = typer.Option([], help="Only these stages (decode/validate/persist)."),
    validate: bool = typer.Option(True, help="Skip records that still fail the contract."),
    dry_run: bool = typer.Option(False, help="Count only; produce nothing, move no offsets."),
) -> None:
    """Re-submit dead letters to the events topic (each once: progress kept in a group), never
    those of an erased user."""
    from sinks.dlq_admin import resubmit

    settings = Settings()
    check_credentials(settings.kafka)
    report = resubmit(
        settings.kafka.librdkafka(),
        settings.topics.dlq,
        settings.topics.events,
        stages=set(stage) or None,
        validate=validate,
        dry_run=dry_run,
        erased=_erased(settings),
    )
    console.print(
        f"read {report.read}, re-submitted {report.resubmitted}, still invalid "
        f"{report.still_invalid}, filtered out {report.filtered_out}, "
        f"of erased users {report.erased}"
    )


def _erased(settings: Settings) -> frozenset[str]:
    """The erased users: the compacted erasures topic and ``erased_users``, as the export and
    the rebuilds read them."""
    from brainstream.settings import ExportSettings
    from sinks.export import load_erased

    return load_erased(
        settings.kafka.librdkafka(), settings.topics, settings.postgres.conninfo, ExportSettings()
    )


@retention_app.command("run")
def retention_run(
    days: int | None = typer.Option(None, help="Keep this many days (default 90)."),
    days_ahead: int | None = typer.Option(None, help="Pre-create this many future days."),
) -> None:
    """Drop day partitions older than the window and pre-create future ones (table owner role)."""
    import psycopg

    from sinks.retention import run_retention

    config = RetentionSettings()
    if days is not None:
        config.days = days
    if days_ahead is not None:
        config.days_ahead = days_ahead
    with psycopg.connect(Settings().postgres.conninfo) as conn:
        report = run_retention(conn, config, datetime.now(UTC).date())
    console.print(
        f"cutoff {report.cutoff}: dropped {len(report.dropped)} partition(s), deleted "
        f"{report.default_rows_deleted} late row(s) from the default partition, created "
        f"{report.created} partition(s) in {report.seconds:.3f}s"
    )


def erase_user(
    user_id: str = typer.Argument(..., help="The pseudonymous user id."),
    reason: str | None = typer.Option(None, help="Stored in erased_users (no personal data)."),
) -> None:
    """Erase a user: raw rows and aggregates in ONE transaction, then the erasures topic."""
    import importlib

    import psycopg
    from pydantic import TypeAdapter, ValidationError

    from schemas.envelope import UserId

    try:
        TypeAdapter(UserId).validate_python(user_id, strict=True)
    except ValidationError:
        raise typer.BadParameter(
            "not a user id the event contract accepts (1-128 characters of A-Za-z0-9_.:-, "
            "a pseudonymous id, never an e-mail address): no event can carry it; nothing erased",
            param_hint="USER_ID",
        ) from None

    from sinks.erasure import erase_user as erase
    from sinks.erasure import publish_erasure

    # The composition root is where sinks and streams meet; streams owns its aggregates.
    erase_user_aggregates = importlib.import_module("streams.erasure").erase_user_aggregates
    projection = WorkerSettings().projection
    settings = Settings()
    check_credentials(settings.kafka)  # before the database changes: publishing must work

    def aggregates(conn: psycopg.Connection[Any], user: str) -> None:
        erase_user_aggregates(conn, user, projection=projection, topic=settings.topics.events)

    with psycopg.connect(settings.postgres.conninfo) as conn:
        report = erase(conn, user_id, reason=reason, aggregates=aggregates)
    publish_erasure(settings.kafka.librdkafka(), settings.topics.erasures, report)
    state = "erased" if report.newly_erased else "already erased (idempotent re-run)"
    console.print(f"{user_id}: {state}; {report.rows_deleted} raw row(s) deleted; published")
    if report.newly_erased and not report.rows_deleted:
        console.print(f"[yellow]no stored event has user id {user_id!r}: check it for a typo")


@events_app.command("timeline")
def events_timeline(
    user_id: str,
    limit: int = typer.Option(20),
    after: str | None = typer.Option(None, help="Cursor printed by the previous page."),
) -> None:
    """A user's events, newest first (keyset-paged)."""
    import psycopg

    from sinks.queries import Cursor, user_timeline

    with psycopg.connect(Settings().postgres.conninfo) as conn:
        cursor = Cursor.parse(after) if after else None
        page, nxt = user_timeline(conn, user_id, limit=limit, after=cursor)
    for e in page:
        typer.echo(f"{e.occurred_at.isoformat()} {e.event_type} {e.source} {_props(e.properties)}")
    if nxt is not None:
        typer.echo(f"next page: --after {nxt.token()}")


@events_app.command("counts")
def events_counts(hours: float = typer.Option(24.0, help="The last this many hours.")) -> None:
    """Events per type over a recent time range."""
    import psycopg

    from sinks.queries import counts_by_type

    end = datetime.now(UTC)
    with psycopg.connect(Settings().postgres.conninfo) as conn:
        counts = counts_by_type(conn, end - timedelta(hours=hours), end)
    for event_type, n in counts.items():
        typer.echo(f"{event_type:24} {n}")


def _props(properties: dict[str, Any]) -> str:
    return json.dumps(properties, separators=(",", ":"))
