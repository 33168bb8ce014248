"""``brainstream dashboard`` and ``brainstream status``: watching the pipeline."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from brainstream.probe import HealthReport, Probe, Thresholds
from brainstream.settings import DashboardSettings, Settings

console = Console(highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
    app.command("status")(status)


def probe(settings: Settings, config: DashboardSettings) -> Probe:
    return Probe(
        kafka_conf=settings.kafka.librdkafka(),
        topics=settings.topics,
        conninfo=settings.postgres.conninfo,
        groups=tuple(config.groups or default_groups()),
        timeout=config.timeout_seconds,
        limits=Thresholds(config.max_lag, config.max_dlq),
    )


def default_groups() -> list[str]:
    """The consumer groups of the raw sink and of the aggregate worker, as configured."""
    from brainstream.settings import SinkSettings, WorkerSettings

    return [SinkSettings().group_id, WorkerSettings().group_id]


def dashboard(
    host: str | None = typer.Option(None, help="Listen address (BRAINSTREAM_DASHBOARD_HOST)."),
    port: int | None = typer.Option(None, help="Port (BRAINSTREAM_DASHBOARD_PORT, 8050)."),
) -> None:
    """Serve the live dashboard (and its /metrics) until interrupted."""
    import uvicorn

    from brainstream.cli.access import guard_listener
    from brainstream.dashboard import DashboardConfig, create_app
    from brainstream.probe import HealthMonitor

    settings, config = Settings(), DashboardSettings()
    listen_host, listen_port = host or config.host, port if port is not None else config.port
    guard_listener("dashboard", listen_host, settings.api_token)
    monitor = HealthMonitor(probe(settings, config), ttl=config.health_ttl_seconds)
    app = create_app(
        DashboardConfig(
            conninfo=settings.postgres.conninfo,
            monitor=monitor,
            refresh_seconds=config.refresh_seconds,
            timeline_page=config.timeline_page,
            db_timeout=config.timeout_seconds,
            distinct_ttl=config.distinct_ttl_seconds,
            token=settings.api_token,
        )
    )
    console.print(f"dashboard on http://{listen_host}:{listen_port}/ (metrics at /metrics)")
    uvicorn.run(app, host=listen_host, port=listen_port, log_level="warning")


def status(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    max_lag: int | None = typer.Option(None, help="Fail when a partition lags more than this."),
    max_dlq: int | None = typer.Option(None, help="Fail when the DLQ holds more than this."),
) -> None:
    """Health of the whole pipeline; exits 1 when something is unhealthy (a health check)."""
    settings, config = Settings(), DashboardSettings()
    if max_lag is not None:
        config.max_lag = max_lag
    if max_dlq is not None:
        config.max_dlq = max_dlq
    report = probe(settings, config).check()
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        for line in describe(report, settings):
            console.print(line)
    raise typer.Exit(0 if report.ok else 1)


def describe(report: HealthReport, settings: Settings) -> list[str]:
    """The report as the lines ``brainstream status`` prints."""
    lines = [
        _component("kafka", settings.kafka.bootstrap_servers, report),
        _component("postgres", _where(settings), report),
    ]
    if report.kafka is not None:
        k = report.kafka
        lines.append(f"events topic: {k.events_total} records; dead letters: {k.dlq_records}")
        for x in k.lags:
            kind = "fence" if x.source == "fence" else "lag"  # fence: x.group is a projection
            position = "none" if x.position is None else str(x.position)
            lines.append(f"  {kind:5} {x.group} p{x.partition}: {x.lag} (at {position} of {x.end})")
    if report.database is not None:
        db = report.database
        lines.append(f"last raw write: {_at(db.last_raw_write)}")
        lines.append(f"last aggregate batch: {_at(db.last_aggregate_write)}")
    if report.ok:
        lines.append("[bold green]HEALTHY[/bold green]")
    else:
        lines.append("[bold red]UNHEALTHY[/bold red]: " + "; ".join(report.problems))
    return lines


def _component(name: str, where: str, report: HealthReport) -> str:
    reason = report.errors.get(name)
    state = "[green]up[/green]" if reason is None else f"[red]DOWN[/red] ({reason})"
    return f"{name} at {where}: {state}"


def _at(value: Any) -> str:
    return value.isoformat() if value is not None else "never"


def _where(settings: Settings) -> str:
    """host:port/dbname of the DSN, never its password."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(settings.postgres.conninfo)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"
