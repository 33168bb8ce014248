"""Slices of a topic: what a bounded read asks for (:class:`LogRange`) and its pure resolution
into per-partition ``[start, end)`` offsets.

The end of every partition is captured once, when the export begins (never later than the
high watermark seen then), so an export is finite and reads the same records however long it
runs or however much is produced meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from eventlog.errors import InvalidRange

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Watermarks = Mapping[int, tuple[int, int]]
"""partition -> (low, high): first offset still in the log, offset after the last record."""


class LogRange(BaseModel):
    """A slice of the log: a time range or explicit per-partition offsets (or the whole log).

    ``since``/``until`` are compared with the records' Kafka timestamps and resolved with
    ``offsets_for_times`` (``until`` exclusive). ``start_offsets`` are inclusive, ``end_offsets``
    exclusive. Partitions not named start at the log start and end at the high watermark
    captured when the run begins.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    start_offsets: dict[int, int] = Field(default_factory=dict)
    end_offsets: dict[int, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> LogRange:
        timed = self.since is not None or self.until is not None
        if timed and (self.start_offsets or self.end_offsets):
            raise ValueError("give a time range or offsets, not both")
        if self.since and self.until and self.until <= self.since:
            raise ValueError("until must be after since")
        if any(p < 0 or o < 0 for p, o in {**self.start_offsets, **self.end_offsets}.items()):
            raise ValueError("partitions and offsets are non-negative")
        return self

    @property
    def kind(self) -> Literal["time", "offsets", "all"]:
        if self.since is not None or self.until is not None:
            return "time"
        return "offsets" if self.start_offsets or self.end_offsets else "all"


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

    Raises:
        InvalidRange: ``starts`` or ``ends`` name a partition the topic does not have.
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
