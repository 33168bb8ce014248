"""What the fold needs of one Kafka record: its coordinates and the few envelope fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from schemas import FieldError, InvalidEvent, codec

FuturePolicy = Literal["clamp", "skip"]


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded, valid event with its position in the log."""

    partition: int
    offset: int
    event_type: str
    user_id: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class FutureSkew:
    """The raw sink's rule for ``occurred_at`` far after the Kafka record time, mirrored here so
    the aggregates count exactly what ``analytics_events`` holds: ``clamp`` buckets the event at
    its record time, ``skip`` drops it (the sink dead-letters it)."""

    seconds: float = 3600.0
    policy: FuturePolicy = "clamp"


def decode_record(
    partition: int,
    offset: int,
    value: bytes | None,
    timestamp_ms: int | None,
    skew: FutureSkew = FutureSkew(),
) -> Record:
    """Validate the record value against the contract (the same rule as the raw sink).

    Raises :class:`schemas.InvalidEvent` for anything the sink would dead-letter, and for any
    other failure on this record (rule ``internal_error``), never another exception. The skew
    rule compares epoch milliseconds, as the sink does: a record timestamp beyond the calendar
    cannot overflow it.
    """
    try:
        event = codec.decode(value)
    except InvalidEvent:
        raise
    except Exception as exc:
        error = FieldError("<event>", "internal_error", f"decode failed ({type(exc).__name__})")
        raise InvalidEvent([error], "decode") from None
    occurred_at = event.occurred_at
    ahead = timestamp_ms is not None and timestamp_ms > 0
    if ahead and occurred_at.timestamp() * 1000 > timestamp_ms + skew.seconds * 1000:  # type: ignore[operator]
        if skew.policy == "skip":
            error = FieldError("occurred_at", "future_skew", "is too far after record time")
            raise InvalidEvent([error])
        occurred_at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)  # type: ignore[operator]
    return Record(partition, offset, event.type, event.user_id, occurred_at)
