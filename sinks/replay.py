"""``replay --to raw``: re-feed ``analytics_events`` from a range of the log, idempotently.

Nothing is produced: the range is read with the export's assigned consumer and written
through the raw sink's own writer (one transaction per batch, ``ON CONFLICT DO NOTHING``,
erased users dropped under the erasure lock). Replaying a range twice, or a range the live
sink already wrote, inserts nothing new. Records that fail to decode are counted, not
dead-lettered again (the live sink dead-lettered them when they first arrived). Give it a
reader made with ``skip_deleted=True`` to carry on past records that retention deletes while
the replay runs (they are counted in ``skipped``).

Given a reader of the sink's accepted stream (``accepted``, what the CLI passes), only the
records the live sink stored are written (:mod:`sinks.export.accepted`): a replay into an
emptied table over any range then stores the very rows the sink stored, with the same
lineage, and never a later duplicate of an event whose first copy lies before the range.

Erasure: ``erased`` (the users of the compacted erasures topic, with those of the target's
``erased_users``) is recorded in the target's ``erased_users`` before anything is written, so a
replay into a fresh schema (disaster recovery after ``db migrate``) leaves them out, as does
the live sink afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from eventlog.ranges import LogRange, PartitionRange
from eventlog.reader import LogReader, plan
from sinks.config import SinkConfig
from sinks.erasure import record_erased
from sinks.export.accepted import Accepted, load_accepted
from sinks.export.progress import NoProgress, Progress
from sinks.records import split
from sinks.writer import WriteResult, create_staging, write_batch


@dataclass(slots=True)
class ReplayResult:
    ranges: list[PartitionRange] = field(default_factory=list)
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    """Already in the table (written by the live sink or an earlier replay)."""
    erased: int = 0
    rejected: int = 0
    """Undecodable or refused by the database; the live sink dead-lettered them."""
    skipped: int = 0
    """Records deleted from the log (retention) before they could be read."""
    not_accepted: int = 0
    """Left out because the live sink did not store them (``accepted`` given)."""

    def add(self, written: WriteResult, rejected: int) -> None:
        self.inserted += written.inserted
        self.duplicates += written.duplicates
        self.erased += written.erased
        self.rejected += rejected + len(written.rejected)


def replay_to_raw(
    reader: LogReader,
    log_range: LogRange,
    conninfo: str,
    sink_config: SinkConfig | None = None,
    *,
    accepted: LogReader | None = None,
    erased: Iterable[str] = (),
    progress: Progress | None = None,
) -> ReplayResult:
    """Raises :class:`~sinks.export.accepted.RangeUnsettled` (``accepted`` given) when the
    live sink has not processed the whole range."""
    config = sink_config or SinkConfig()
    progress = progress or NoProgress()
    result = ReplayResult(ranges=plan(reader, log_range))
    kept = None
    if accepted is not None:
        kept = load_accepted(accepted, result.ranges, reader.stall_seconds)
    skipped_before = reader.skipped
    progress.start(sum(r.size for r in result.ranges))
    try:
        with psycopg.connect(conninfo) as conn:
            record_erased(conn, erased)
            create_staging(conn)
            for prange in result.ranges:
                _replay_partition(reader, prange, conn, config, result, progress, kept)
    finally:
        progress.close()
    result.skipped = reader.skipped - skipped_before
    return result


def _replay_partition(
    reader: LogReader,
    prange: PartitionRange,
    conn: psycopg.Connection[tuple[object, ...]],
    config: SinkConfig,
    result: ReplayResult,
    progress: Progress,
    kept: Accepted | None,
) -> None:
    position = prange.start
    for records in reader.read(prange):
        batch = records
        if kept is not None:
            batch = [m for m in records if kept.keep(prange.partition, m.offset())]
            result.not_accepted += len(records) - len(batch)
        rows, rejected = split(batch, config)
        result.read += len(records)
        result.add(write_batch(conn, rows), len(rejected))
        next_position = records[-1].offset() + 1
        progress.advance(next_position - position)
        position = next_position
    progress.advance(prange.end - position)
