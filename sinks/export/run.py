"""One export, start to finish: plan the range, stream, filter, write, hash, publish.

The CLI, the HTTP endpoint and the tests all go through :func:`run_export`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from schemas import InvalidEvent, decode
from sinks.export.config import ExportConfig, ExportRequest, Format, LogRange
from sinks.export.dataset import DatasetDir
from sinks.export.errors import PseudonymKeyMissing
from sinks.export.jsonl import SUFFIX, JsonlWriter
from sinks.export.manifest import FileManifest, Manifest, content_hash, file_sha256
from sinks.export.manifest_build import build_manifest
from sinks.export.parquet import ParquetWriter
from sinks.export.privacy import Pseudonymiser
from sinks.export.progress import NoProgress, Progress
from sinks.export.ranges import PartitionRange, epoch_ms, from_times, resolve
from sinks.export.reader import LogReader, Message
from sinks.export.rows import ExportRow, export_row
from sinks.export.selection import Outcome, Selection
from sinks.export.tally import Tally
from sinks.export.writers import DataWriter

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Written:
    writer: DataWriter
    format: Format
    compression: str


def plan(reader: LogReader, log_range: LogRange) -> list[PartitionRange]:
    """Per-partition ``[start, end)``, ends captured now (so the run is finite)."""
    marks = reader.watermarks()
    if log_range.kind != "time":
        return resolve(marks, log_range.start_offsets, log_range.end_offsets)
    parts = sorted(marks)

    def at(moment: datetime | None) -> dict[int, int]:
        if moment is None:
            return {}
        return from_times(reader.offsets_for_times(parts, epoch_ms(moment)), marks)

    return resolve(marks, at(log_range.since), at(log_range.until))


def run_export(
    request: ExportRequest,
    config: ExportConfig,
    reader: LogReader,
    erased: Set[str],
    *,
    progress: Progress | None = None,
    clock: Clock = lambda: datetime.now(UTC),
) -> Manifest:
    pseudonymiser = _pseudonymiser(request, config)
    ranges = plan(reader, request.range)
    dataset = DatasetDir(config.output_dir, request.name, overwrite=request.overwrite)
    dataset.open()
    outputs: list[Written] = []
    progress = progress or NoProgress()
    try:
        outputs = _open_writers(request, config, dataset)
        tally = Tally()
        progress.start(sum(r.size for r in ranges))
        stream = _Stream(Selection(request.filters, erased), pseudonymiser, tally)
        for prange in ranges:
            _copy_partition(reader, prange, stream, [o.writer for o in outputs], progress)
        for output in outputs:
            output.writer.close()
        files = [_describe(o, tally) for o in outputs]
        manifest = build_manifest(
            request, reader.topic, ranges, tally, files, content_hash(files),
            config=config, pseudonymiser=pseudonymiser, created_at=clock(), version=_version(),
        )  # fmt: skip
        dataset.commit(manifest.model_dump_json(indent=2).encode())
        return manifest
    except BaseException:
        for output in outputs:
            output.writer.abort()
        dataset.discard()
        raise
    finally:
        progress.close()


class _Stream:
    """Decode, select and shape one batch of records into rows (pure apart from counting)."""

    def __init__(self, selection: Selection, pseudonymiser: Pseudonymiser | None, tally: Tally):
        self._selection = selection
        self._pseudonym = pseudonymiser.pseudonym if pseudonymiser else None
        self._tally = tally

    def rows(self, partition: int, batch: Sequence[Message]) -> list[ExportRow]:
        self._tally.read(partition, len(batch))
        rows = []
        for msg in batch:
            try:
                event = decode(msg.value())
            except InvalidEvent:
                self._tally.left_out(Outcome.UNDECODABLE)
                continue
            outcome = self._selection.outcome(event)
            if outcome is not Outcome.EXPORTED:
                self._tally.left_out(outcome)
                continue
            self._tally.exported(event.type, event.schema_version)
            user = self._pseudonym(event.user_id) if self._pseudonym else event.user_id
            rows.append(export_row(event, partition, msg.offset(), user))
        return rows


def _copy_partition(
    reader: LogReader,
    prange: PartitionRange,
    stream: _Stream,
    writers: list[DataWriter],
    progress: Progress,
) -> None:
    position = prange.start
    for batch in reader.read(prange):
        rows = stream.rows(prange.partition, batch)
        for writer in writers:
            writer.write(rows)
        next_position = batch[-1].offset() + 1
        progress.advance(next_position - position)
        position = next_position
    progress.advance(prange.end - position)


def _open_writers(
    request: ExportRequest, config: ExportConfig, dataset: DatasetDir
) -> list[Written]:
    outputs: list[Written] = []
    for fmt in request.formats:
        if fmt == "parquet":
            writer: DataWriter = ParquetWriter(
                dataset.path("events.parquet"),
                row_group_rows=config.row_group_rows,
                compression=config.parquet_compression,
                compression_level=config.parquet_compression_level,
            )
            outputs.append(Written(writer, fmt, config.parquet_compression))
        else:
            compression = request.jsonl_compression
            path = dataset.path(f"events{SUFFIX[compression]}")
            writer = JsonlWriter(path, compression=compression, zstd_level=config.zstd_level)
            outputs.append(Written(writer, fmt, compression))
    return outputs


def _describe(output: Written, tally: Tally) -> FileManifest:
    path = output.writer.path
    return FileManifest(
        name=path.name,
        format=output.format,
        compression=output.compression,
        rows=tally.outcomes[Outcome.EXPORTED],
        bytes=path.stat().st_size,
        sha256=file_sha256(path),
    )


def _pseudonymiser(request: ExportRequest, config: ExportConfig) -> Pseudonymiser | None:
    if not request.pseudonymise:
        return None
    if config.pseudonym_key is None or not config.pseudonym_key.get_secret_value():
        raise PseudonymKeyMissing()
    return Pseudonymiser(config.pseudonym_key)


def _version() -> str:
    try:
        return version("brainstream")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"
