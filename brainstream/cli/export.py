"""``brainstream export run|serve`` and ``brainstream replay``: datasets and rebuilt projections."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from brainstream.settings import ExportSettings, Settings
from schemas.config import check_credentials

if TYPE_CHECKING:
    from eventlog.reader import LogReader
    from sinks.export import ExportRequest, Filters, LogRange, Manifest
    from sinks.export.progress import Progress

console = Console(stderr=True)
export_app = typer.Typer(help="Datasets from the event log: Parquet/JSONL plus a manifest.")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    app.command("replay")(replay)


def parse_time(text: str | None) -> datetime | None:
    """ISO 8601; a time without an offset is taken as UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_offsets(items: list[str]) -> dict[int, int]:
    """``["0=100", "2=5"]`` -> ``{0: 100, 2: 5}``."""
    offsets: dict[int, int] = {}
    for item in items:
        partition, sep, offset = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: expected PARTITION=OFFSET")
        try:
            offsets[int(partition)] = int(offset)
        except ValueError:
            raise typer.BadParameter(f"{item!r}: expected PARTITION=OFFSET") from None
    return offsets


def log_range(since: str | None, until: str | None, start: list[str], end: list[str]) -> LogRange:
    from pydantic import ValidationError

    from eventlog.ranges import LogRange

    try:
        return LogRange(
            since=parse_time(since),
            until=parse_time(until),
            start_offsets=parse_offsets(start),
            end_offsets=parse_offsets(end),
        )
    except ValidationError as exc:
        raise typer.BadParameter(_first_error(exc)) from None


def _first_error(exc: Any) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _interrupt_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the partial dataset is removed on the way out."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


_SINCE = typer.Option(None, help="Records at or after this time (ISO 8601, UTC if no offset).")
_UNTIL = typer.Option(None, help="Records before this time (exclusive).")
_START = typer.Option(
    [],
    "--start-offset",
    help="PARTITION=OFFSET, inclusive (repeatable); a partition not named is read from its start.",
)
_END = typer.Option(
    [],
    "--end-offset",
    help="PARTITION=OFFSET, exclusive (repeatable); a partition not named is read to its end.",
)
_NO_PROGRESS = typer.Option(False, "--no-progress", help="No progress bar.")


@export_app.command("run")
def export_run(
    name: str = typer.Argument(..., help="Dataset name: <output dir>/<name>/."),
    since: str | None = _SINCE,
    until: str | None = _UNTIL,
    start_offset: list[str] = _START,
    end_offset: list[str] = _END,
    fmt: list[str] = typer.Option(["parquet"], "--format", help="parquet and/or jsonl."),
    jsonl_compression: str = typer.Option("none", help="none, gzip or zstd."),
    event_type: list[str] = typer.Option([], "--type", help="Only these event types."),
    user_id: list[str] = typer.Option([], "--user", help="Only these user ids."),
    source: list[str] = typer.Option([], "--source", help="Only these sources."),
    pseudonymise: bool = typer.Option(False, help="Replace user ids by keyed hashes."),
    overwrite: bool = typer.Option(False, help="Replace an existing dataset of that name."),
    output_dir: Path | None = typer.Option(None, help="Default BRAINSTREAM_EXPORT_OUTPUT_DIR."),
    no_progress: bool = _NO_PROGRESS,
    as_written: bool = typer.Option(
        False, "--as-written", help="Each event as written, not upcast to its latest version."
    ),
) -> None:
    """Export a range of the event log to a dataset directory with a manifest."""
    from pydantic import ValidationError

    from eventlog.errors import LogReadError
    from sinks.export import ExportError, Filters
    from sinks.export.progress import BarProgress

    config = ExportSettings()
    if output_dir is not None:
        config.output_dir = output_dir
    try:
        request = _request(
            name, log_range(since, until, start_offset, end_offset), fmt, jsonl_compression,
            Filters(
                event_types=frozenset(event_type) or None,
                user_ids=frozenset(user_id) or None,
                sources=frozenset(source) or None,
            ),
            pseudonymise, overwrite, as_written,
        )  # fmt: skip
    except ValidationError as exc:
        raise typer.BadParameter(_first_error(exc)) from None
    check_credentials(Settings().kafka)
    _interrupt_on_sigterm()
    try:
        manifest = run_request(request, config, BarProgress(enabled=not no_progress))
    except (ExportError, LogReadError) as exc:
        console.print(f"[red]export failed:[/red] {exc}")
        raise typer.Exit(1) from None
    excluded = manifest.excluded
    console.print(
        f"{config.output_dir / manifest.name}: {manifest.exported} events exported of "
        f"{manifest.records_read} read (erased {excluded.erased}, filtered {excluded.filtered}, "
        f"undecodable {excluded.undecodable}, not upcast {excluded.not_upcast}, "
        f"not stored by the sink {excluded.not_accepted}); content hash {manifest.content_hash}"
    )


def _request(
    name: str,
    selected: LogRange,
    formats: list[str],
    jsonl_compression: str,
    filters: Filters,
    pseudonymise: bool,
    overwrite: bool,
    as_written: bool = False,
) -> ExportRequest:
    from sinks.export import ExportRequest

    return ExportRequest.model_validate(
        {
            "name": name,
            "range": selected,
            "formats": tuple(formats),
            "jsonl_compression": jsonl_compression,
            "filters": filters,
            "pseudonymise": pseudonymise,
            "overwrite": overwrite,
            "as_written": as_written,
        }
    )


def run_request(request: ExportRequest, config: ExportSettings, progress: Progress) -> Manifest:
    """The one code path of an export, for the CLI and the HTTP endpoint."""
    from sinks.export import export

    settings = Settings()
    return export(
        request,
        config,
        settings.kafka.librdkafka(),
        settings.topics,
        settings.postgres.conninfo,
        progress=progress,
    )


@export_app.command("serve")
def export_serve(
    host: str | None = typer.Option(None, help="Default BRAINSTREAM_EXPORT_HTTP_HOST."),
    port: int | None = typer.Option(None, help="Default BRAINSTREAM_EXPORT_HTTP_PORT."),
) -> None:
    """Serve the export API: POST /exports, GET /exports/{id}."""
    import uvicorn

    from brainstream.cli.access import guard_listener
    from sinks.export.http import create_app
    from sinks.export.jobs import Jobs

    settings, config = Settings(), ExportSettings()
    token, listen_host = settings.api_token, host or config.http_host
    guard_listener("export API", listen_host, token)
    check_credentials(settings.kafka)
    app = create_app(Jobs(lambda request, progress: run_request(request, config, progress)), token)
    uvicorn.run(app, host=listen_host, port=port or config.http_port)


def replay(
    to: str = typer.Option(..., "--to", help="raw (analytics_events) or aggregates."),
    since: str | None = _SINCE,
    until: str | None = _UNTIL,
    start_offset: list[str] = _START,
    end_offset: list[str] = _END,
    no_progress: bool = _NO_PROGRESS,
) -> None:
    """Rebuild a projection from the log: --to raw re-feeds analytics_events (idempotent, over
    the given range, default all); --to aggregates rebuilds the aggregate tables from the whole
    log into fresh tables and swaps them in atomically."""
    from confluent_kafka import Consumer

    from eventlog.reader import LogReader, reader_conf
    from sinks.export.api import GROUP_ID
    from sinks.export.progress import BarProgress

    if to not in ("raw", "aggregates"):
        raise typer.BadParameter("--to must be raw or aggregates")
    selected = log_range(since, until, start_offset, end_offset)
    if to == "aggregates" and selected.kind != "all":
        raise typer.BadParameter("--to aggregates always replays the whole log (no range)")
    settings, config = Settings(), ExportSettings()
    check_credentials(settings.kafka)
    progress = BarProgress(enabled=not no_progress, description=f"replay {to}")
    consumer = Consumer(reader_conf(settings.kafka.librdkafka(), GROUP_ID))
    try:
        # A replay rebuilds a projection: records retention deletes meanwhile are skipped (and
        # counted), where an export would fail rather than publish less than it planned.
        # --to aggregates reads the sink's accepted stream: exactly what the raw table stored.
        topic = settings.topics.events if to == "raw" else settings.topics.accepted
        reader = LogReader(
            consumer, topic, config, skip_deleted=True, principal=settings.kafka.sasl_username
        )
        if to == "raw":
            _replay_raw(reader, selected, settings, config, progress)
        else:
            _replay_aggregates(reader, settings, config, progress)
    finally:
        consumer.close()


def _replay_raw(
    reader: LogReader,
    selected: LogRange,
    settings: Settings,
    config: ExportSettings,
    progress: Progress,
) -> None:
    from confluent_kafka import Consumer

    from brainstream.settings import SinkSettings
    from eventlog.reader import LogReader, reader_conf
    from sinks.export import load_erased
    from sinks.export.api import GROUP_ID
    from sinks.replay import replay_to_raw

    erased = load_erased(
        settings.kafka.librdkafka(), settings.topics, settings.postgres.conninfo, config
    )
    side = Consumer(reader_conf(settings.kafka.librdkafka(), GROUP_ID))
    from eventlog.errors import LogReadError
    from sinks.export import ExportError

    try:  # only what the live sink stored, unless BRAINSTREAM_EXPORT_SOURCE=log
        accepted = LogReader(
            side, settings.topics.accepted, config, principal=settings.kafka.sasl_username
        )
        result = replay_to_raw(
            reader,
            selected,
            settings.postgres.conninfo,
            SinkSettings(),
            accepted=accepted if config.source == "accepted" else None,
            erased=erased,
            progress=progress,
        )
    except (ExportError, LogReadError) as exc:
        console.print(f"[red]replay failed:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        side.close()
    console.print(
        f"replayed {result.read} records: {result.inserted} inserted, {result.duplicates} "
        f"already present, {result.erased} erased, {result.rejected} rejected, "
        f"{result.not_accepted} not stored by the sink, "
        f"{result.skipped} deleted by retention meanwhile"
    )


def _replay_aggregates(
    reader: LogReader, settings: Settings, config: ExportSettings, progress: Progress
) -> None:
    from brainstream.replay_aggregates import Target, rebuild_aggregates
    from brainstream.settings import WorkerSettings
    from sinks.export import load_erased

    target = Target(WorkerSettings().projection, settings.topics.events)
    dsn = settings.postgres.conninfo
    erased = load_erased(settings.kafka.librdkafka(), settings.topics, dsn, config)
    result = rebuild_aggregates(reader, dsn, target, erased, progress=progress)
    console.print(
        f"aggregates rebuilt from {result.read} accepted records ({result.counted} events "
        f"counted, {result.below_fence} forwarded twice, {result.erased} erased, "
        f"{result.invalid} invalid records, {result.caught_up} caught up at "
        f"the swap, {result.skipped} deleted by retention meanwhile); fences now {result.fences}"
    )
