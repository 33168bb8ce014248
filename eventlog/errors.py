"""What reading the log can raise; each error carries the data a caller needs to act on it."""

from __future__ import annotations

from collections.abc import Mapping

from schemas import BrainstreamError


class LogReadError(BrainstreamError):
    """Root of the errors of a bounded read of the log (export, replay, rebuild)."""


class InvalidRange(LogReadError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid range: {reason}")
        self.reason = reason


class ExportStalled(LogReadError):
    """A partition delivered nothing for too long before its end offset was reached."""

    def __init__(self, partition: int, position: int, end: int, seconds: float) -> None:
        super().__init__(
            f"partition {partition} stalled at offset {position} (end {end}) for {seconds:.0f}s"
        )
        self.partition = partition
        self.position = position
        self.end = end
        self.seconds = seconds


class RecordsGone(LogReadError):
    """Records of the planned range were deleted (retention, delete-records) before being read."""

    def __init__(self, partition: int, offset: int) -> None:
        super().__init__(f"partition {partition}: records from offset {offset} no longer exist")
        self.partition = partition
        self.offset = offset


class TimeLookupFailed(LogReadError):
    """The broker could not say which offsets a time corresponds to."""

    def __init__(self, topic: str, epoch_ms: int, errors: Mapping[int, object]) -> None:
        super().__init__(f"offsets_for_times({epoch_ms}) on {topic!r} failed: {errors}")
        self.topic = topic
        self.epoch_ms = epoch_ms
        self.errors = errors


class TopicMissing(LogReadError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist or has no partitions")
        self.topic = topic
