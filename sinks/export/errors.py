"""Typed errors of export and replay; each carries the data a caller needs to act on it.

What reading the log itself raises (a stalled partition, deleted records, a missing topic, an
invalid range) is in :mod:`eventlog.errors`."""

from __future__ import annotations

from pathlib import Path

from schemas import BrainstreamError


class ExportError(BrainstreamError):
    """Root of every export/replay error."""


class DatasetExists(ExportError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"dataset already exists: {path}")
        self.path = path


class PseudonymKeyMissing(ExportError):
    def __init__(self) -> None:
        super().__init__("pseudonymisation asked for but no key is configured")


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
