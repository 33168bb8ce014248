"""Pure decoding of Kafka records into table rows, or into rejections bound for the DLQ.

Records are confluent-kafka ``Message`` objects as the consumer returns them (tests build them
with ``Message(topic=..., value=..., ...)``): copying each into an object of our own cost about
a fifth of the sink's decoding time."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import Message

import schemas
from schemas import MAX_EVENT_BYTES, BrainstreamError, FieldError
from schemas.acceptance import INTERNAL_ERROR, Accept, Reject, judge
from schemas.codec import header_mismatch
from sinks.config import SinkConfig

log = logging.getLogger(__name__)


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
    """The row of ``record``, or why it is refused: the verdict of the acceptance rule
    (:func:`schemas.acceptance.judge`: decode, validate, the ``bs.schema_version`` header, the
    future-skew rule of ``config.acceptance``).

    Never raises for a record: a contract violation is a rejection naming the fields, and any
    other failure on this one record (a fault of the decoder or of building the row) is a
    rejection at its stage (``decode`` or ``encode``) with the rule ``internal_error``, so one
    record can neither stop the sink nor hold back its neighbours."""
    try:
        verdict = judge(record.value(), record.headers(), timestamp_ms(record), config.acceptance)
        if isinstance(verdict, Reject):
            if verdict.reason == INTERNAL_ERROR:
                _log_fault(record, verdict.stage, verdict.error_class)
            return Rejection(record, verdict.stage, verdict.error_class, verdict.errors)
        return _row(record, verdict)
    except Exception as exc:
        return fault(record, "encode", exc)


def fault(record: Message, stage: str, exc: BaseException) -> Rejection:
    """A rejection for an unexpected failure on one record at ``stage`` (the exception's class
    is kept, never its message: it may quote the input)."""
    _log_fault(record, stage, type(exc).__name__)
    error = FieldError("<event>", INTERNAL_ERROR, f"{stage} failed ({type(exc).__name__})")
    return Rejection(record, stage, type(exc).__name__, (error,))


def split(records: list[Message], config: SinkConfig) -> tuple[list[Row], list[Rejection]]:
    """``to_row`` over a batch. Hot path: an event the contract's plain validator accepts
    (:mod:`schemas.plain`: no model instances) and not too far ahead of its record's timestamp
    is turned into a row inline; anything else goes through ``to_row``, which accepts it or
    says why not."""
    rows: list[Row] = []
    rejected: list[Rejection] = []
    plain = schemas.REGISTRY.plain.validate_json
    dumps = orjson.dumps
    rule = config.acceptance
    safe = rule.safe_until(r.timestamp()[1] for r in records)
    for record in records:
        value = record.value()
        try:
            if not value or len(value) > MAX_EVENT_BYTES:
                raise _ModelPath
            event = plain(value)
            if header_mismatch(record.headers(), event["schema_version"]) is not None:
                raise _ModelPath
            if (
                safe is not None
                and event["occurred_at"] > safe
                and rule.too_far_ahead(event["occurred_at"], record.timestamp()[1])
            ):
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


def _log_fault(record: Message, stage: str, error_class: str) -> None:
    log.warning(
        "record %s:%s rejected at %s: %s", record.partition(), record.offset(), stage, error_class
    )


class _ModelPath(BrainstreamError):
    """The record takes the model's path (``to_row``)."""


def _row(record: Message, verdict: Accept) -> Row:
    event = verdict.event
    return Row(
        event_id=event.event_id,
        occurred_at=verdict.occurred_at,
        kafka_offset=record.offset(),  # type: ignore[arg-type]  # set on every consumed record
        kafka_partition=record.partition(),  # type: ignore[arg-type]
        schema_version=event.schema_version,
        event_type=event.type,
        user_id=event.user_id,
        source=event.source,
        properties=verdict.properties_json(),
        origin=record,
        clamped=verdict.clamped,
    )
