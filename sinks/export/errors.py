"""Typed errors of export and replay; each carries the data a caller needs to act on it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from schemas import BrainstreamError


class ExportError(BrainstreamError):
    """Root of every export/replay error."""


class InvalidRange(ExportError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid range: {reason}")
        self.reason = reason


class DatasetExists(ExportError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"dataset already exists: {path}")
        self.path = path


class PseudonymKeyMissing(ExportError):
    def __init__(self) -> None:
        super().__init__("pseudonymisation asked for but no key is configured")


class ExportStalled(ExportError):
    """A partition delivered nothing for too long before its end offset was reached."""

    def __init__(self, partition: int, position: int, end: int, seconds: float) -> None:
        super().__init__(
            f"partition {partition} stalled at offset {position} (end {end}) for {seconds:.0f}s"
        )
        self.partition = partition
        self.position = position
        self.end = end
        self.seconds = seconds


class RecordsGone(ExportError):
    """Records of the planned range were deleted (retention, delete-records) before being read."""

    def __init__(self, partition: int, offset: int) -> None:
        super().__init__(f"partition {partition}: records from offset {offset} no longer exist")
        self.partition = partition
        self.offset = offset


class TimeLookupFailed(ExportError):
    """The broker could not say which offsets a time corresponds to."""

    def __init__(self, topic: str, epoch_ms: int, errors: Mapping[int, object]) -> None:
        super().__init__(f"offsets_for_times({epoch_ms}) on {topic!r} failed: {errors}")
        self.topic = topic
        self.epoch_ms = epoch_ms
        self.errors = errors


class TopicMissing(ExportError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist or has no partitions")
        self.topic = topic


class RangeUnsettled(ExportError):
    """Part of a range is not (yet) covered by the sink's accepted stream."""

    def __init__(self, partition: int, start: int, end: int, settled: tuple[int, int] | None):
        where = "nothing" if settled is None else f"offsets {settled[0]}..{settled[1] - 1}"
        super().__init__(
            f"partition {partition}: offsets {start}..{end - 1} are not all settled by the sink"
            f" (its accepted stream covers {where}); is the sink running and caught up?"
        )
        self.partition = partition
        self.settled = settled
