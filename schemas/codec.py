"""Event <-> Kafka record bytes. Compact JSON value, user_id key, type/version headers."""

from __future__ import annotations

from schemas import topics
from schemas.envelope import MAX_EVENT_BYTES, Event
from schemas.errors import FieldError, InvalidEvent
from schemas.registry import REGISTRY, EventRegistry, schema_version_of

Headers = list[tuple[str, bytes]]
RecordHeaders = list[tuple[str, bytes | str | None]] | dict[str, bytes | str | None] | None
"""A consumed record's headers as confluent-kafka returns them (``None``: none)."""


def encode(event: Event) -> bytes:
    """Compact JSON of the envelope (``None`` properties omitted).

    Raises :class:`InvalidEvent` above ``MAX_EVENT_BYTES``, and (rule
    ``schema_version_mismatch``) for an event whose ``schema_version`` is not its class's
    version: its properties have that class's shape, so the record would lie about it.
    """
    if event.schema_version != schema_version_of(type(event)):
        raise InvalidEvent(
            [
                FieldError(
                    "schema_version",
                    "schema_version_mismatch",
                    f"is not the version of {type(event).__name__} "
                    f"({schema_version_of(type(event))})",
                )
            ]
        )
    value = event.__pydantic_serializer__.to_json(event, exclude_none=True)
    if len(value) > MAX_EVENT_BYTES:
        raise _too_large(len(value))
    return value


def decode(value: bytes | None, registry: EventRegistry = REGISTRY) -> Event:
    """Validate record bytes into the registered event class; errors name the field.

    Raises:
        InvalidEvent: empty, larger than ``MAX_EVENT_BYTES`` (stage ``decode``), not JSON, or
            not a valid event of a registered type and version (``UnknownEventType``,
            ``UnknownSchemaVersion``), or without its own ``event_id`` / ``occurred_at``.
    """
    if not value:
        raise InvalidEvent([FieldError("<event>", "empty", "record value is empty")], "decode")
    if len(value) > MAX_EVENT_BYTES:
        raise _too_large(len(value))
    event = registry.validate_json(value)
    made_up = RECORDED - event.model_fields_set
    if made_up:
        # The model would invent them (a new id, now): a record must carry its own, or every
        # redelivery would be stored as another event at another time.
        raise InvalidEvent([FieldError(f, "missing", "Field required") for f in sorted(made_up)])
    return event


def header_mismatch(
    headers: RecordHeaders,
    version: int,
) -> FieldError | None:
    """The error when the record's ``bs.schema_version`` header names another version than
    its value's ``schema_version`` (``None`` when they agree or the header is absent: records
    from producers other than the SDK need not carry it)."""
    if not headers:
        return None
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        if name == topics.H_SCHEMA_VERSION:
            expected = _VERSION_BYTES.get(version) or str(version).encode()
            if value != expected and value != expected.decode():
                return MISMATCH
    return None


_VERSION_BYTES = {v: str(v).encode() for v in range(1, 33)}
MISMATCH = FieldError(
    "schema_version",
    "schema_version_mismatch",
    f"differs from the record's {topics.H_SCHEMA_VERSION} header",
)

RECORDED = frozenset({"event_id", "occurred_at"})
"""Fields the model fills in when they are absent, which a record must carry itself."""


def headers(event: Event) -> Headers:
    return [
        (topics.H_TYPE, event.type.encode()),
        (topics.H_SCHEMA_VERSION, str(event.schema_version).encode()),
        (topics.H_SOURCE, event.source.encode()),
    ]


def to_record(event: Event) -> tuple[bytes, bytes, Headers]:
    """``(key, value, headers)`` for ``Producer.produce``: keyed by user for per-user order."""
    return event.user_id.encode(), encode(event), headers(event)


def _too_large(size: int) -> InvalidEvent:
    return InvalidEvent(
        [FieldError("<event>", "max_size", f"encoded size {size} B exceeds {MAX_EVENT_BYTES} B")]
    )
