"""The exported columns: the envelope, flattened, plus the record's position in the log."""

from __future__ import annotations

from datetime import datetime

COLUMNS = (
    "event_id",
    "type",
    "user_id",
    "occurred_at",
    "source",
    "schema_version",
    "properties",
    "kafka_partition",
    "kafka_offset",
)
"""``event_id`` canonical lower-case UUID text (a :class:`uuid.UUID` in :data:`Columns`);
``user_id`` the id or its pseudonym; ``occurred_at`` UTC with microseconds; ``properties`` the
validated properties as compact JSON text (unset optional fields omitted)."""

Columns = dict[str, list[object]]


def iso_utc(moment: datetime) -> str:
    """``2026-01-31T12:00:00.000000Z``: fixed width, so text order is time order."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
