"""Plain models of an export: how to run exports (config) and what one export asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from eventlog.ranges import LogRange
from schemas.acceptance import AcceptanceRule

Format = Literal["parquet", "jsonl"]
Source = Literal["accepted", "log"]
JsonlCompression = Literal["none", "gzip", "zstd"]
ParquetCompression = Literal["zstd", "snappy", "gzip", "none"]

DATASET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"


class ExportConfig(BaseModel):
    """How exports run on this deployment (filled from ``BRAINSTREAM_EXPORT_*``)."""

    output_dir: Path = Path("exports")
    row_group_rows: int = Field(default=50_000, ge=1_000, le=1_000_000)
    """Rows buffered before a Parquet row group (and a JSONL chunk) is written: bounds memory."""
    parquet_compression: ParquetCompression = "zstd"
    parquet_compression_level: int = Field(default=3, ge=1, le=22)
    zstd_level: int = Field(default=3, ge=1, le=22)
    """Level of JSONL zstd compression."""
    pseudonym_key: SecretStr | None = None
    """HMAC-SHA256 key for ``pseudonymise``; exports that ask for it fail without one."""
    workers: int = Field(default=0, ge=0, le=64)
    """Processes that decode and shape records (0: one per CPU, at most 4)."""
    parallel_min_records: int = Field(default=50_000, ge=0)
    """Smaller ranges are shaped in the main process (starting workers costs about a second)."""
    poll_batch: int = Field(default=5_000, ge=1, le=100_000)
    stall_seconds: float = Field(default=60.0, gt=0)
    """Fail a partition that delivers nothing for this long before its end offset."""
    kafka_timeout_seconds: float = Field(default=30.0, gt=0)
    source: Source = "accepted"
    """``accepted``: only what the raw sink stored, read from its accepted stream (no event
    twice, nothing it refused; the range must be settled by the sink, see
    :mod:`sinks.export.accepted`). ``log``: every record of the range that the acceptance rule
    accepts, duplicates and records the sink refused at persist included (for inspecting the
    log itself)."""
    acceptance: AcceptanceRule = Field(default_factory=AcceptanceRule)
    """The acceptance rule (:mod:`schemas.acceptance`), applied to every record read from either
    source: a record is exported at the time the raw table stores it, or not at all."""
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8088, ge=0, le=65_535)


class Filters(BaseModel):
    """Keep only events matching every given set (an empty or missing set keeps all)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_types: frozenset[str] | None = None
    user_ids: frozenset[str] | None = None
    sources: frozenset[str] | None = None


class ExportRequest(BaseModel):
    """One export: a range of the log, filters, formats. The same model for CLI and HTTP."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=DATASET_NAME)
    range: LogRange = Field(default_factory=LogRange)
    formats: tuple[Format, ...] = ("parquet",)
    jsonl_compression: JsonlCompression = "none"
    filters: Filters = Field(default_factory=Filters)
    pseudonymise: bool = False
    overwrite: bool = False
    as_written: bool = False
    """Export each event's properties as they were written, under their own schema_version,
    instead of upcast to their type's latest version (docs/evolution.md)."""

    @model_validator(mode="after")
    def _check(self) -> ExportRequest:
        if not self.formats or len(set(self.formats)) != len(self.formats):
            raise ValueError("formats must be non-empty and without repeats")
        return self
