"""One export, start to finish: plan the range, stream, filter, write, hash, publish.

The CLI, the HTTP endpoint and the tests all go through :func:`run_export`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from eventlog.ranges import PartitionRange
from eventlog.reader import LogReader, plan
from schemas.acceptance import AcceptanceRule
from sinks.export.accepted import Accepted, load_accepted
from sinks.export.config import ExportConfig, ExportRequest, Format
from sinks.export.dataset import DatasetDir
from sinks.export.errors import PseudonymKeyMissing
from sinks.export.jsonl import SUFFIX, JsonlWriter
from sinks.export.manifest import FileManifest, Manifest, content_hash, file_sha256
from sinks.export.manifest_build import build_manifest
from sinks.export.parallel import ShapePool
from sinks.export.parquet import ParquetWriter
from sinks.export.privacy import Pseudonymiser
from sinks.export.progress import NoProgress, Progress
from sinks.export.shaping import ShapeSpec, Task
from sinks.export.tally import Tally
from sinks.export.typed import TypedWriters
from sinks.export.writers import DataWriter

Clock = Callable[[], datetime]

AUTO_WORKERS = min(os.cpu_count() or 1, 4)
"""Decoding dominates; the consuming, writing main process mostly waits on the workers."""


@dataclass(frozen=True, slots=True)
class Written:
    writer: DataWriter | TypedWriters
    format: Format
    compression: str


def run_export(
    request: ExportRequest,
    config: ExportConfig,
    reader: LogReader,
    erased: Set[str],
    *,
    accepted: LogReader | None = None,
    progress: Progress | None = None,
    clock: Clock = lambda: datetime.now(UTC),
) -> Manifest:
    """Export ``request``. With ``accepted`` (a reader of the sink's accepted stream) only the
    records the raw sink stored are exported (:mod:`sinks.export.accepted`), else every
    decodable record; the manifest's ``options.source`` says which."""
    pseudonymiser = _pseudonymiser(request, config)
    config = config.model_copy(update={"source": "accepted" if accepted is not None else "log"})
    ranges = plan(reader, request.range)
    kept = load_accepted(accepted, ranges, config.stall_seconds) if accepted is not None else None
    total = sum(r.size for r in ranges)
    dataset = DatasetDir(config.output_dir, request.name, overwrite=request.overwrite)
    dataset.open()
    outputs: list[Written] = []
    progress = progress or NoProgress()
    try:
        spec = _spec(request, erased, pseudonymiser, config.acceptance)
        outputs = _open_writers(request, config, dataset, typed=spec.typed)
        progress.start(total)
        tally = _copy(
            reader, ranges, spec, outputs, progress, workers=_workers(config, total), kept=kept
        )
        for output in outputs:
            output.writer.close()
        files = [f for o in outputs for f in _describe(o, tally)]
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


def _copy(
    reader: LogReader,
    ranges: list[PartitionRange],
    spec: ShapeSpec,
    outputs: list[Written],
    progress: Progress,
    *,
    workers: int,
    kept: Accepted | None = None,
) -> Tally:
    tally = Tally()
    positions = {r.partition: r.start for r in ranges}
    pool = ShapePool(spec, workers)
    source = tasks(reader, ranges, kept)
    results = pool.map(source)
    try:
        for shaped in results:
            tally.add(shaped.partition, shaped.counts)
            for output in outputs:
                output.writer.write(shaped)
            progress.advance(shaped.last_offset + 1 - positions[shaped.partition])
            positions[shaped.partition] = shaped.last_offset + 1
    finally:
        # Close the generators now (the consumer is unassigned while it is still open).
        results.close()
        source.close()
        pool.close()
    progress.advance(sum(r.end - positions[r.partition] for r in ranges))
    return tally


def tasks(
    reader: LogReader, ranges: list[PartitionRange], kept: Accepted | None = None
) -> Generator[Task, None, None]:
    """The records of every range, in export order, as batches detached from the consumer
    (marked with what the sink accepted when ``kept`` is given)."""
    for prange in ranges:
        for batch in reader.read(prange):
            offsets = [msg.offset() for msg in batch]
            mask = kept.mask(prange.partition, offsets) if kept is not None else None
            # Records of one producer carry few distinct header lists; each is sent once per
            # batch (pickle writes a repeated object as a reference), where copying every
            # record's list of tuples to a worker cost more than the records' values.
            seen: dict[tuple[tuple[str, bytes], ...], list[tuple[str, bytes]]] = {}
            yield Task(
                prange.partition,
                offsets,
                [msg.value() for msg in batch],
                mask,
                [msg.timestamp()[1] for msg in batch],
                [seen.setdefault(tuple(h), h) if (h := msg.headers()) else h for msg in batch],
            )


def _spec(
    request: ExportRequest,
    erased: Set[str],
    pseudonymiser: Pseudonymiser | None,
    rule: AcceptanceRule,
) -> ShapeSpec:
    key = pseudonymiser.key if pseudonymiser is not None else None
    return ShapeSpec(
        request.formats,
        request.filters,
        frozenset(erased),
        key,
        upcast=not request.as_written,
        rule=rule,
    )


def _workers(config: ExportConfig, total: int) -> int:
    """Worker processes for ``total`` records (0: shape in this process)."""
    if total < config.parallel_min_records:
        return 0
    return config.workers or AUTO_WORKERS


def _open_writers(
    request: ExportRequest, config: ExportConfig, dataset: DatasetDir, *, typed: bool
) -> list[Written]:
    """The writers of ``request``'s formats; with ``typed``, Parquet adds one typed file a type
    (:mod:`sinks.export.typed`)."""
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
            if typed:
                by_type = TypedWriters(
                    dataset.path,
                    row_group_rows=config.row_group_rows,
                    compression=config.parquet_compression,
                    compression_level=config.parquet_compression_level,
                )
                outputs.append(Written(by_type, fmt, config.parquet_compression))
        else:
            compression = request.jsonl_compression
            path = dataset.path(f"events{SUFFIX[compression]}")
            writer = JsonlWriter(path, compression=compression, zstd_level=config.zstd_level)
            outputs.append(Written(writer, fmt, compression))
    return outputs


def _describe(output: Written, tally: Tally) -> list[FileManifest]:
    writer = output.writer
    if isinstance(writer, TypedWriters):
        files = [(w.path, w.rows) for _, w in sorted(writer.writers.items())]
    else:
        files = [(writer.path, tally.exported)]
    return [
        FileManifest(
            name=path.name,
            format=output.format,
            compression=output.compression,
            rows=rows,
            bytes=path.stat().st_size,
            sha256=file_sha256(path),
        )
        for path, rows in files
    ]


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
