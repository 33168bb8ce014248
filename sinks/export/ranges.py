"""Pure resolution of a requested range into per-partition ``[start, end)`` offsets.

The end of every partition is captured once, when the export begins (never later than the
high watermark seen then), so an export is finite and reads the same records however long it
runs or however much is produced meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sinks.export.errors import InvalidRange

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Watermarks = Mapping[int, tuple[int, int]]
"""partition -> (low, high): first offset still in the log, offset after the last record."""


@dataclass(frozen=True, slots=True)
class PartitionRange:
    partition: int
    start: int
    """First offset to read (inclusive)."""
    end: int
    """Offset after the last one to read (exclusive)."""

    @property
    def size(self) -> int:
        return self.end - self.start


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (Kafka timestamps)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def resolve(
    watermarks: Watermarks,
    starts: Mapping[int, int] | None = None,
    ends: Mapping[int, int] | None = None,
) -> list[PartitionRange]:
    """Every partition in ascending order; unnamed ones span the whole log.

    Offsets are clamped into ``[low, high]`` (records before ``low`` are gone, after ``high``
    do not exist yet); an end before its start yields an empty range.
    """
    starts, ends = starts or {}, ends or {}
    unknown = sorted((set(starts) | set(ends)) - set(watermarks))
    if unknown:
        raise InvalidRange(f"partitions {unknown} do not exist (topic has {len(watermarks)})")
    ranges = []
    for partition in sorted(watermarks):
        low, high = watermarks[partition]
        start = _clamp(starts.get(partition, low), low, high)
        end = _clamp(ends.get(partition, high), low, high)
        ranges.append(PartitionRange(partition, start, max(start, end)))
    return ranges


def from_times(found: Mapping[int, int], watermarks: Watermarks) -> dict[int, int]:
    """``offsets_for_times`` answers to offsets: ``-1`` (no record at or after) means ``high``."""
    return {p: (o if o >= 0 else watermarks[p][1]) for p, o in found.items()}


def _clamp(value: int, low: int, high: int) -> int:
    return min(max(value, low), high)
