"""Pure decoding of Kafka records into table rows, or into rejections bound for the DLQ.

Records are confluent-kafka ``Message`` objects as the consumer returns them (tests build them
with ``Message(topic=..., value=..., ...)``): copying each into an object of our own cost about
a fifth of the sink's decoding time."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Message

import schemas
from schemas import MAX_EVENT_BYTES, Event, FieldError, InvalidEvent
from schemas.codec import header_mismatch
from sinks.config import SinkConfig

log = logging.getLogger(__name__)

ORIGINAL_OCCURRED_AT = "_original_occurred_at"
"""Key added to ``properties`` when a future ``occurred_at`` was clamped."""

_DECODE_RULES = frozenset({"json_invalid", "json_type", "empty", "max_size"})


def timestamp_ms(record: Message) -> int | None:
    """The record's Kafka timestamp in epoch milliseconds, ``None`` when it has none."""
    ts: int = record.timestamp()[1]
    return ts if ts > 0 else None


@dataclass(slots=True)
class Row:
    """A row of ``analytics_events`` (``ingested_at`` is set by the database). Immutable by
    convention (not ``frozen``: built once per record on the hot path)."""

    event_id: uuid.UUID
    occurred_at: datetime
    kafka_offset: int
    kafka_partition: int
    schema_version: int
    event_type: str
    user_id: str
    source: str
    properties: str
    """The validated properties as compact JSON text."""
    origin: Message
    clamped: bool = False

    def copy_values(self) -> tuple[Any, ...]:
        return (
            self.event_id,
            self.occurred_at,
            self.kafka_offset,
            self.kafka_partition,
            self.schema_version,
            self.event_type,
            self.user_id,
            self.source,
            self.properties,
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record the sink will not store: where it failed and why (no input values)."""

    origin: Message
    stage: str
    error_class: str
    errors: tuple[FieldError, ...]


def to_row(record: Message, config: SinkConfig) -> Row | Rejection:
    """Decode and validate ``record`` (its ``bs.schema_version`` header, when present, must
    agree with its value); apply the future-skew policy.

    Never raises for a record: a contract violation is a rejection naming the fields, and any
    other failure on this one record (a fault of the decoder or of building the row) is a
    rejection at its stage (``decode`` or ``encode``) with the rule ``internal_error``, so one
    record can neither stop the sink nor hold back its neighbours."""
    try:
        event = schemas.decode(record.value())
    except InvalidEvent as exc:
        return _rejection(record, exc)
    except Exception as exc:
        return fault(record, "decode", exc)
    try:
        mismatch = header_mismatch(record.headers(), event.schema_version)
        if mismatch is not None:
            return Rejection(record, "validate", "InvalidEvent", (mismatch,))
        return _row(record, event, config)
    except Exception as exc:
        return fault(record, "encode", exc)


def fault(record: Message, stage: str, exc: BaseException) -> Rejection:
    """A rejection for an unexpected failure on one record at ``stage`` (the exception's class
    is kept, never its message: it may quote the input)."""
    log.warning(
        "record %s:%s rejected at %s: %s",
        record.partition(),
        record.offset(),
        stage,
        type(exc).__name__,
    )
    error = FieldError("<event>", INTERNAL_ERROR, f"{stage} failed ({type(exc).__name__})")
    return Rejection(record, stage, type(exc).__name__, (error,))


INTERNAL_ERROR = "internal_error"
"""The rule of a rejection that no rule of the contract names: a fault while handling it."""


def split(records: list[Message], config: SinkConfig) -> tuple[list[Row], list[Rejection]]:
    """``to_row`` over a batch. Hot path: an event the contract's plain validator accepts
    (:mod:`schemas.plain`: no model instances) and not too far ahead of its record's timestamp
    is turned into a row inline; anything else goes through ``schemas.decode`` and ``_row``,
    which accept it or say why not."""
    rows: list[Row] = []
    rejected: list[Rejection] = []
    plain = schemas.REGISTRY.plain.validate_json
    dumps = orjson.dumps
    skew_ms = config.future_skew_seconds * 1000
    safe = _safe_until(records, skew_ms)
    for record in records:
        value = record.value()
        try:
            if not value or len(value) > MAX_EVENT_BYTES:
                raise _ModelPath
            event = plain(value)
            if header_mismatch(record.headers(), event["schema_version"]) is not None:
                raise _ModelPath
            if safe is not None and event["occurred_at"] > safe:
                ts = record.timestamp()[1]  # the exact rule, as in _too_far_ahead
                if ts > 0 and event["occurred_at"].timestamp() * 1000 > ts + skew_ms:
                    raise _ModelPath
            props = dumps(event["properties"]).decode()
        except Exception:  # refused, deferred (_ModelPath), or a fault: to_row says which
            result = to_row(record, config)
            (rows if isinstance(result, Row) else rejected).append(result)  # type: ignore[arg-type]
            continue
        rows.append(
            Row(
                event["event_id"],
                event["occurred_at"],
                record.offset(),  # type: ignore[arg-type]  # set on every consumed record
                record.partition(),  # type: ignore[arg-type]
                event["schema_version"],
                event["type"],
                event["user_id"],
                event["source"],
                props,
                record,
            )
        )
    return rows, rejected


def _safe_until(records: list[Message], skew_ms: float) -> datetime | None:
    """An instant no record of the batch counts as too far ahead at or before (``None``: no
    record has a timestamp, so none is checked). Comparing with it costs a fraction of the
    exact per-record rule, which then runs only for events after it; a millisecond early to
    stay clear of float rounding."""
    stamps = [ts for _kind, ts in (r.timestamp() for r in records) if ts > 0]
    if not stamps:
        return None
    try:
        return datetime.fromtimestamp((min(stamps) + skew_ms - 1) / 1000, UTC)
    except (OverflowError, ValueError, OSError):  # a skew beyond year 9999: nothing is ahead
        return datetime.max.replace(tzinfo=UTC)


class _ModelPath(Exception):
    """The record takes the model's path (``to_row``)."""


def _rejection(record: Message, exc: InvalidEvent) -> Rejection:
    return Rejection(record, _stage(exc), type(exc).__name__, tuple(exc.errors))


def _row(record: Message, event: Event, config: SinkConfig) -> Row | Rejection:
    properties: dict[str, Any] | None = None
    occurred_at = event.occurred_at
    if _too_far_ahead(record, occurred_at, config):
        if config.future_policy == "dlq":
            error = FieldError("occurred_at", "future_skew", "is too far after the record time")
            return Rejection(record, "validate", "FutureTimestamp", (error,))
        properties = {**_properties(event), ORIGINAL_OCCURRED_AT: occurred_at.isoformat()}
        occurred_at = _record_time(record)
    return Row(
        event_id=event.event_id,
        occurred_at=occurred_at,
        kafka_offset=record.offset(),  # type: ignore[arg-type]  # set on every consumed record
        kafka_partition=record.partition(),  # type: ignore[arg-type]
        schema_version=event.schema_version,
        event_type=event.type,
        user_id=event.user_id,
        source=event.source,
        properties=_json(properties) if properties is not None else _properties_json(event),
        origin=record,
        clamped=properties is not None,
    )


def _stage(exc: InvalidEvent) -> str:
    if exc.stage == "decode" or any(e.rule in _DECODE_RULES for e in exc.errors):
        return "decode"
    return "validate"


def _record_time(record: Message) -> datetime:
    ts = timestamp_ms(record)
    assert ts is not None
    return datetime.fromtimestamp(ts / 1000, UTC)


def _too_far_ahead(record: Message, occurred_at: datetime, config: SinkConfig) -> bool:
    """Deterministic per record (the Kafka timestamp, never now()), so redelivery is idempotent."""
    ts = timestamp_ms(record)
    if ts is None:
        return False
    return occurred_at.timestamp() * 1000 > ts + config.future_skew_seconds * 1000


def _properties(event: Event) -> dict[str, Any]:
    return event.properties.model_dump(mode="json", exclude_none=True)


def _properties_json(event: Event) -> str:
    props = event.properties
    return props.__pydantic_serializer__.to_json(props, exclude_none=True).decode()


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode()
