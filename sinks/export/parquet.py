"""Parquet data file: typed envelope columns, properties as JSON text, bounded row groups.

Writer options are fixed (and nothing time-dependent is written), so the same rows give the
same bytes with the same pyarrow version. ``properties`` is a UTF-8 JSON string column (one
schema for every event type, including types registered after the dataset was made); read it
with ``json.loads`` or DuckDB's ``properties::JSON``.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sinks.export.config import ParquetCompression
from sinks.export.rows import COLUMNS, Columns

if TYPE_CHECKING:
    from sinks.export.shaping import Shaped

FORMAT_VERSION = "1"

SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("properties", pa.string(), nullable=False, metadata={"content": "json"}),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
    ],
    metadata={
        "brainstream.dataset_format": FORMAT_VERSION,
        "brainstream.order": "kafka_partition, kafka_offset",
    },
)
assert tuple(SCHEMA.names) == COLUMNS


class ParquetWriter:
    """Buffers at most ``row_group_rows`` rows (as Arrow), then writes them as one row group.

    Row groups hold exactly ``row_group_rows`` rows (the last one fewer), whatever the sizes of
    the incoming batches, so the file does not depend on how the records were fetched.
    """

    def __init__(
        self,
        path: Path,
        *,
        row_group_rows: int,
        compression: ParquetCompression = "zstd",
        compression_level: int = 3,
        schema: pa.Schema = SCHEMA,
    ) -> None:
        self.path = path
        self.rows = 0
        """Rows written so far."""
        self._schema = schema
        self._row_group_rows = row_group_rows
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._writer = pq.ParquetWriter(
            str(path), schema, **_options(compression, compression_level)
        )

    def write(self, shaped: Shaped) -> None:
        if shaped.arrow is not None:
            self.write_batch(shaped.arrow)

    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Buffer ``batch`` (of this file's schema); write every full row group."""
        if not batch.num_rows:
            return
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        self.rows += batch.num_rows
        if self._buffered >= self._row_group_rows:
            table = pa.Table.from_batches(self._buffer, self._schema)
            whole = (self._buffered // self._row_group_rows) * self._row_group_rows
            self._writer.write_table(table.slice(0, whole), row_group_size=self._row_group_rows)
            rest = table.slice(whole)
            self._buffer = rest.to_batches() if rest.num_rows else []
            self._buffered = rest.num_rows

    @property
    def buffered(self) -> int:
        """Rows held in memory, not yet written (fewer than ``row_group_rows``)."""
        return self._buffered

    def flush(self) -> None:
        """Write what is buffered as one row group, however few rows it holds."""
        if self._buffered:
            table = pa.Table.from_batches(self._buffer, self._schema)
            self._writer.write_table(table, row_group_size=self._row_group_rows)
        self._buffer, self._buffered = [], 0

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def abort(self) -> None:
        self._buffer, self._buffered = [], 0
        self._writer.close()


def to_record_batch(columns: Columns) -> pa.RecordBatch:
    """The rows of ``columns`` in :data:`SCHEMA` (``event_id`` holds :class:`uuid.UUID`s)."""
    arrays = [
        uuid_strings(cast("list[UUID]", columns[name]))
        if name == "event_id"
        else pa.array(columns[name], field.type)
        for name, field in _FIELDS
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def uuid_strings(ids: list[UUID]) -> pa.StringArray:
    """The canonical text of each id (``str(uuid)``: lower-case hex, 8-4-4-4-12), made column-wise:
    the ids' 16 bytes in hex as one string, cut into 32-character values, the dashes joined in
    by Arrow (``str()`` on each id costs several times more)."""
    n = len(ids)
    hexes = pa.StringArray.from_buffers(
        n,
        pa.py_buffer(array("i", range(0, 32 * n + 1, 32))),
        pa.py_buffer(b"".join([u.bytes for u in ids]).hex().encode()),
    )
    groups = [pc.utf8_slice_codeunits(hexes, a, b) for a, b in _UUID_GROUPS]
    joined: pa.StringArray = pc.binary_join_element_wise(*groups, "-")
    return joined


_UUID_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))


_FIELDS = [(name, SCHEMA.field(name)) for name in COLUMNS]


def _options(compression: ParquetCompression, level: int) -> dict[str, Any]:
    codec = None if compression == "none" else compression
    return {
        "compression": codec,
        "compression_level": level if compression in ("zstd", "gzip") else None,
        "version": "2.6",
        "data_page_version": "1.0",
        "use_dictionary": True,
        "write_statistics": True,
        "write_page_index": False,
        "store_schema": True,
    }
