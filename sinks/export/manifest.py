"""The manifest: exactly what a dataset holds, so a training run can say what data it saw.

``content_hash`` is the SHA-256 of the dataset's ``sha256sum``-style listing (one
``<sha256>  <file name>`` line per data file, sorted by name): it covers the data bytes only,
never the manifest itself (whose ``created_at`` differs between otherwise identical runs).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1


class RangeManifest(BaseModel):
    kind: Literal["time", "offsets", "all"]
    since: datetime | None = None
    until: datetime | None = None
    time_basis: str = "kafka record timestamp (offsets_for_times); until exclusive"


class FiltersManifest(BaseModel):
    event_types: list[str] | None = None
    user_ids: list[str] | None = None
    """Pseudonyms when the dataset is pseudonymised."""
    sources: list[str] | None = None


class PartitionManifest(BaseModel):
    partition: int
    start_offset: int
    """First offset read (inclusive)."""
    end_offset: int
    """Offset after the last one read (exclusive), captured when the export began."""
    records_read: int


class Excluded(BaseModel):
    erased: int
    undecodable: int
    filtered: int
    not_upcast: int = 0
    """Decoded, but an upcaster failed on them (their rule is logged; fix it and re-export)."""
    not_accepted: int = 0
    """Records the raw sink did not store (a later duplicate, refused, erased), left out when
    the export reads its accepted stream (``source = accepted``)."""


class TypeShape(BaseModel):
    """The one shape of ``properties`` for every exported row of a type."""

    schema_version: int
    """The version every row of the type is in (``schema_version`` column)."""
    properties_schema: dict[str, object]
    """JSON Schema of ``properties`` at that version."""


class FileManifest(BaseModel):
    name: str
    format: Literal["parquet", "jsonl"]
    compression: str
    rows: int
    bytes: int
    sha256: str


class Manifest(BaseModel):
    manifest_version: int = MANIFEST_VERSION
    name: str
    topic: str
    brainstream_version: str
    created_at: datetime
    range: RangeManifest
    filters: FiltersManifest
    order: str = "kafka_partition ascending, then kafka_offset ascending (per-user order)"
    partitions: list[PartitionManifest]
    records_read: int
    exported: int
    excluded: Excluded
    counts_by_type: dict[str, int]
    schema_versions: dict[str, dict[str, int]]
    """type -> {schema_version as read from the topic: rows}."""
    shape: Literal["latest", "as_written"] = "as_written"
    """``latest``: every row upcast to its type's latest version (the default of an export);
    ``as_written``: each row under the version it was written with."""
    types: dict[str, TypeShape] = Field(default_factory=dict)
    """With ``shape`` ``latest``: type -> the version and properties schema of all its rows."""
    pseudonymised: bool
    pseudonym_key_fingerprint: str | None = None
    options: dict[str, str | int]
    files: list[FileManifest]
    content_hash: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(files: list[FileManifest]) -> str:
    listing = "".join(f"{f.sha256}  {f.name}\n" for f in sorted(files, key=lambda f: f.name))
    return hashlib.sha256(listing.encode()).hexdigest()


def load(dataset_dir: Path) -> Manifest:
    """The manifest of a complete dataset (``FileNotFoundError`` when it is not complete)."""
    return Manifest.model_validate_json((dataset_dir / MANIFEST_FILE).read_bytes())
