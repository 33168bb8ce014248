"""The exported row: the envelope, flattened, plus its position in the log (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import Event

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


@dataclass(frozen=True, slots=True)
class ExportRow:
    event_id: str
    """Canonical lower-case UUID text."""
    type: str
    user_id: str
    """The user id, or its pseudonym when the export is pseudonymised."""
    occurred_at: datetime
    """UTC, microsecond precision."""
    source: str
    schema_version: int
    properties: str
    """The validated properties as compact JSON text (unset optional fields omitted)."""
    kafka_partition: int
    kafka_offset: int


def export_row(event: Event, partition: int, offset: int, user_id: str) -> ExportRow:
    props = event.properties
    return ExportRow(
        event_id=str(event.event_id),
        type=event.type,
        user_id=user_id,
        occurred_at=event.occurred_at,
        source=event.source,
        schema_version=event.schema_version,
        properties=props.__pydantic_serializer__.to_json(props, exclude_none=True).decode(),
        kafka_partition=partition,
        kafka_offset=offset,
    )


def iso_utc(moment: datetime) -> str:
    """``2026-01-31T12:00:00.000000Z``: fixed width, so text order is time order."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
