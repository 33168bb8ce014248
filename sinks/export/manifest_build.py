"""Assembling the manifest from what an export planned, counted and wrote (pure)."""

from __future__ import annotations

from datetime import datetime

from eventlog.ranges import PartitionRange
from schemas import REGISTRY
from sinks.export.config import ExportConfig, ExportRequest, Filters
from sinks.export.manifest import (
    Excluded,
    FileManifest,
    FiltersManifest,
    Manifest,
    PartitionManifest,
    RangeManifest,
    TypeShape,
)
from sinks.export.privacy import Pseudonymiser
from sinks.export.selection import Outcome
from sinks.export.tally import Tally
from sinks.export.typed import latest_properties_schema


def build_manifest(
    request: ExportRequest,
    topic: str,
    ranges: list[PartitionRange],
    tally: Tally,
    files: list[FileManifest],
    digest: str,
    *,
    config: ExportConfig,
    pseudonymiser: Pseudonymiser | None,
    created_at: datetime,
    version: str,
) -> Manifest:
    return Manifest(
        name=request.name,
        topic=topic,
        brainstream_version=version,
        created_at=created_at,
        range=RangeManifest(
            kind=request.range.kind, since=request.range.since, until=request.range.until
        ),
        filters=_filters(request.filters, pseudonymiser),
        partitions=[
            PartitionManifest(
                partition=r.partition,
                start_offset=r.start,
                end_offset=r.end,
                records_read=tally.read_by_partition[r.partition],
            )
            for r in ranges
        ],
        records_read=tally.total_read,
        exported=tally.exported,
        excluded=Excluded(
            erased=tally.outcomes[Outcome.ERASED],
            undecodable=tally.outcomes[Outcome.UNDECODABLE],
            filtered=tally.outcomes[Outcome.FILTERED],
            not_upcast=tally.outcomes[Outcome.NOT_UPCAST],
            not_accepted=tally.outcomes[Outcome.NOT_ACCEPTED],
        ),
        counts_by_type=tally.counts_by_type(),
        schema_versions=tally.schema_versions(),
        shape="as_written" if request.as_written else "latest",
        types={} if request.as_written else _shapes(tally.counts_by_type()),
        pseudonymised=pseudonymiser is not None,
        pseudonym_key_fingerprint=pseudonymiser.fingerprint if pseudonymiser else None,
        options=_options(request, config),
        files=files,
        content_hash=digest,
    )


def _shapes(types: dict[str, int]) -> dict[str, TypeShape]:
    """The latest version and its properties' JSON Schema, per exported type."""
    return {
        name: TypeShape(
            schema_version=REGISTRY.latest(name),
            properties_schema=latest_properties_schema(name),
        )
        for name in types
    }


def _filters(filters: Filters, pseudonymiser: Pseudonymiser | None) -> FiltersManifest:
    users = filters.user_ids or None
    if users is not None and pseudonymiser is not None:
        users = frozenset(map(pseudonymiser.pseudonym, users))
    return FiltersManifest(
        event_types=sorted(filters.event_types) if filters.event_types else None,
        user_ids=sorted(users) if users else None,
        sources=sorted(filters.sources) if filters.sources else None,
    )


def _options(request: ExportRequest, config: ExportConfig) -> dict[str, str | int]:
    return {
        "formats": ",".join(request.formats),
        "row_group_rows": config.row_group_rows,
        "parquet_compression": config.parquet_compression,
        "parquet_compression_level": config.parquet_compression_level,
        "jsonl_compression": request.jsonl_compression,
        "zstd_level": config.zstd_level,
        "source": config.source,
    }
