"""JSON Lines data file, optionally gzip or zstd compressed, written as it streams.

One object per line with the Parquet columns as keys, ``properties`` as a nested object and
``occurred_at`` as fixed-width UTC text. Compression is deterministic (gzip without a name or a
modification time, zstd at a fixed level, both fed fixed-size chunks), so the same rows give
the same bytes.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import zstandard

from sinks.export.config import JsonlCompression

if TYPE_CHECKING:
    from sinks.export.shaping import Shaped

CHUNK = 1 << 20
"""Bytes handed to the compressor at a time (fixed, so output never depends on batch sizes)."""


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
        self._pending = bytearray()

    def write(self, shaped: Shaped) -> None:
        if not shaped.jsonl:
            return
        self._pending += shaped.jsonl
        whole = len(self._pending) // CHUNK * CHUNK
        for start in range(0, whole, CHUNK):
            self._out.write(bytes(self._pending[start : start + CHUNK]))
        del self._pending[:whole]

    def close(self) -> None:
        if self._pending:
            self._out.write(bytes(self._pending))
            self._pending.clear()
        self._out.close()
        self._raw.close()

    def abort(self) -> None:
        self._pending.clear()
        self._raw.close()


def _compressed(raw: BinaryIO, compression: JsonlCompression, zstd_level: int) -> _Out:
    if compression == "gzip":
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
    if compression == "zstd":
        writer: _Out = zstandard.ZstdCompressor(level=zstd_level).stream_writer(raw, closefd=False)
        return writer
    return raw
