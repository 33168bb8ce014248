"""Which records of a range the raw sink accepted, read from its accepted stream.

An export and ``replay --to raw`` keep exactly the records the sink forwarded
(:mod:`sinks.forward`): never the same ``event_id`` twice, never a record the sink refused
(decode, validate, persist) or dropped for an erased user. Rather than apply the rule again,
they read the accepted stream (``brainstream.events.accepted``, :mod:`schemas.accepted`):
partition ``p`` of it lists the accepted offsets of source partition ``p``, together with
the offset range each record settled.

A range must be *settled*: every offset in it lies in a range the sink processed. Offsets past
the sink's progress are waited for (up to ``stall_seconds``: a sink runs in any deployment
that produces); offsets before the stream's first record (the stream did not exist yet, or
retention removed it) cannot be decided. Either raises :class:`RangeUnsettled`, naming the
partition and what is settled; ``BRAINSTREAM_EXPORT_SOURCE=log`` exports every decodable
record instead (duplicates and refused records included).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eventlog.ranges import PartitionRange
from eventlog.reader import LogReader
from schemas.accepted import InvalidBatch, decode_batch
from sinks.export.errors import ExportError, RangeUnsettled

_WAIT_SECONDS = 0.2


@dataclass(slots=True)
class Accepted:
    """Per source partition: the accepted offsets inside the requested range."""

    offsets: dict[int, set[int]] = field(default_factory=dict)

    def mask(self, partition: int, offsets: list[int]) -> list[bool]:
        """For each offset, whether the sink accepted the record there."""
        accepted = self.offsets.get(partition, set())
        return [o in accepted for o in offsets]

    def keep(self, partition: int, offset: int) -> bool:
        return offset in self.offsets.get(partition, ())


def load_accepted(
    reader: LogReader,
    ranges: list[PartitionRange],
    stall_seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Accepted:
    """Read the accepted stream (``reader`` on the accepted topic) until every range is settled.

    Raises:
        RangeUnsettled: a range begins before the stream's first record, or the sink has not
            processed its end within ``stall_seconds``.
        ExportError: a record of the stream is malformed (``InvalidBatch``'s reason).
    """
    accepted = Accepted()
    wanted = {r.partition: r for r in ranges if r.size > 0}
    if not wanted:
        return accepted
    position = {p: 0 for p in wanted}  # next offset of the accepted topic to read
    settled: dict[int, tuple[int, int]] = {}
    deadline = clock() + stall_seconds
    while True:
        marks = reader.watermarks()
        for partition, prange in wanted.items():
            low, high = marks.get(partition, (0, 0))
            start = max(low, position[partition])
            if start < high:
                _scan(reader, PartitionRange(partition, start, high), prange, accepted, settled)
                position[partition] = high
        pending = [p for p, r in wanted.items() if not _covers(settled.get(p), r)]
        for partition in pending:
            span, prange = settled.get(partition), wanted[partition]
            if span is not None and span[0] > prange.start:
                raise RangeUnsettled(partition, prange.start, prange.end, span)
        if not pending:
            return accepted
        if clock() > deadline:
            p = pending[0]
            raise RangeUnsettled(p, wanted[p].start, wanted[p].end, settled.get(p))
        time.sleep(_WAIT_SECONDS)


def _covers(span: tuple[int, int] | None, prange: PartitionRange) -> bool:
    return span is not None and span[0] <= prange.start and prange.end <= span[1]


def _scan(
    reader: LogReader,
    part: PartitionRange,
    prange: PartitionRange,
    accepted: Accepted,
    settled: dict[int, tuple[int, int]],
) -> None:
    offsets = accepted.offsets.setdefault(prange.partition, set())
    for records in reader.read(part):
        for record in records:
            try:
                batch = decode_batch(record.value())
            except InvalidBatch as exc:
                raise ExportError(
                    f"{reader.topic}[{record.partition()}]@{record.offset()}: {exc.reason}"
                ) from None
            if batch.partition != prange.partition:
                raise ExportError(
                    f"{reader.topic}[{record.partition()}]@{record.offset()}: a batch of source"
                    f" partition {batch.partition} on partition {prange.partition}"
                )
            lo, hi = settled.get(batch.partition, (batch.first_offset, batch.last_offset + 1))
            settled[batch.partition] = (min(lo, batch.first_offset), max(hi, batch.last_offset + 1))
            offsets.update(o for o in batch.offsets if prange.start <= o < prange.end)
