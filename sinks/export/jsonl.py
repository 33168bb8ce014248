"""JSON Lines data file, optionally gzip or zstd compressed, written as it streams.

One object per line with the Parquet columns as keys, ``properties`` as a nested object and
``occurred_at`` as fixed-width UTC text. Compression is deterministic (gzip without a name or a
modification time, zstd at a fixed level), so the same rows give the same bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import orjson
import zstandard

from sinks.export.config import JsonlCompression
from sinks.export.rows import ExportRow, iso_utc


class _Out(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def close(self) -> None: ...


SUFFIX: dict[JsonlCompression, str] = {"none": ".jsonl", "gzip": ".jsonl.gz", "zstd": ".jsonl.zst"}


class JsonlWriter:
    def __init__(
        self, path: Path, *, compression: JsonlCompression = "none", zstd_level: int = 3
    ) -> None:
        self.path = path
        self._raw = path.open("wb")
        self._out: _Out = _compressed(self._raw, compression, zstd_level)

    def write(self, rows: Sequence[ExportRow]) -> None:
        self._out.write(b"".join(map(line, rows)))

    def close(self) -> None:
        self._out.close()
        self._raw.close()

    def abort(self) -> None:
        self._raw.close()


def line(row: ExportRow) -> bytes:
    head = orjson.dumps(
        {
            "event_id": row.event_id,
            "type": row.type,
            "user_id": row.user_id,
            "occurred_at": iso_utc(row.occurred_at),
            "source": row.source,
            "schema_version": row.schema_version,
            "kafka_partition": row.kafka_partition,
            "kafka_offset": row.kafka_offset,
        }
    )
    # ``properties`` is already compact JSON: splice it in instead of re-encoding it.
    return b"".join((head[:-1], b',"properties":', row.properties.encode(), b"}\n"))


def _compressed(raw: BinaryIO, compression: JsonlCompression, zstd_level: int) -> _Out:
    if compression == "gzip":
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
    if compression == "zstd":
        writer: _Out = zstandard.ZstdCompressor(level=zstd_level).stream_writer(raw, closefd=False)
        return writer
    return raw
