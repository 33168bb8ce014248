"""The per-call fast path: validate the properties, build the record bytes without a model.

Per type it caches the property model's validator and serializer (and, for plain models of
JSON-native fields, a validator of the same field rules into a dict that orjson dumps: no model
instance per call), the constant parts of the envelope and the headers. The envelope's other
fields need no per-call validation: the event id and the timestamp are made here, the user id
is validated once per user context and the source once per tracker, and ids matching the
contract's pattern need no JSON escaping. The bytes equal ``schemas.encode`` of the same event
up to the timestamp's formatting, and ``schemas.decode`` reads them back into the same event
(tested).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from time import time_ns
from typing import Any

from orjson import JSONEncodeError, dumps
from pydantic import ValidationError
from uuid_utils import uuid7

from schemas import MAX_EVENT_BYTES, FieldError, InvalidEvent, topics
from schemas.envelope import Event, Properties
from schemas.plain import properties_validator
from schemas.registry import EventRegistry, invalid_event

Headers = list[tuple[str, bytes]]

_ENVELOPE = {"event_id", "type", "user_id", "occurred_at", "source", "schema_version", "properties"}


class TypeCodec:
    """Everything constant about records of one event type from one source."""

    __slots__ = (
        "fast",
        "headers",
        "mid",
        "name",
        "serialize",
        "template",
        "type_head",
        "validate",
    )

    def __init__(self, cls: type[Event], source: str) -> None:
        """Raises ``TypeError`` when ``cls.properties`` is not a :class:`Properties` model."""
        props_cls = cls.model_fields["properties"].annotation
        if not (isinstance(props_cls, type) and issubclass(props_cls, Properties)):
            raise TypeError(f"{cls.__name__}.properties is not a Properties model")
        version = cls.model_fields["schema_version"].default
        self.name = cls.event_type
        self.validate = props_cls.__pydantic_validator__.validate_python
        self.serialize = props_cls.__pydantic_serializer__.to_json
        self.fast = properties_validator(props_cls)
        """Validates dict properties of a plain model into a dict for orjson, or ``None``."""
        self.type_head = b'","type":"' + self.name.encode() + b'","user_id":"'
        self.mid = (
            b'","source":"' + source.encode() + b'","schema_version":%d,"properties":' % version
        )
        # one %-format per event: id, user id, second prefix, microseconds, properties
        self.template = b"".join(
            (
                b'{"event_id":"%s',
                _literal(self.type_head),
                b'%s","occurred_at":"%s.%06dZ',
                _literal(self.mid),
                b"%s}",
            )
        )
        self.headers: Headers = [
            (topics.H_TYPE, self.name.encode()),
            (topics.H_SCHEMA_VERSION, str(version).encode()),
            (topics.H_SOURCE, source.encode()),
        ]

    def encode(self, user: bytes, props: Mapping[str, Any] | Properties) -> tuple[str, bytes]:
        """``(event_id, value)`` for the user whose valid id is ``user`` (UTF-8, as the record
        key carries it); raises :class:`InvalidEvent` naming ``properties.<field>``.

        ``Tracker.track`` inlines this for dict properties of a plain model (its hot path)."""
        fast = self.fast
        if fast is not None and type(props) is dict:
            try:
                return self.stamp(user, dumps(fast(props)))
            except (ValidationError, JSONEncodeError):
                pass  # the model decides: it accepts (e.g. an explicit None) or reports
        return self.stamp(user, self.model_body(props))

    def model_body(self, props: Mapping[str, Any] | Properties) -> bytes:
        """The properties' JSON through the model; raises :class:`InvalidEvent`."""
        try:
            return self.serialize(self.validate(props), exclude_none=True)
        except ValidationError as exc:
            raise _in_properties(invalid_event(exc, tagged=False)) from None

    def stamp(self, user: bytes, body: bytes) -> tuple[str, bytes]:
        """A new event id and the record value: the envelope around ``body``, stamped now.

        Raises:
            InvalidEvent: the record would exceed ``MAX_EVENT_BYTES`` (rule ``max_size``).
        """
        event_id = str(uuid7())
        second, nanos = divmod(time_ns(), 1_000_000_000)
        clock = CLOCK  # one tuple: threads never see a second paired with another's prefix
        if clock[0] != second:
            clock = tick(second)
        value = self.template % (event_id.encode(), user, clock[1], nanos // 1000, body)
        if len(value) > MAX_EVENT_BYTES:
            raise oversize()
        return event_id, value


class Encoder:
    """Type name -> :class:`TypeCodec`, built on first use; ``None`` for exotic envelopes."""

    def __init__(
        self, registry: EventRegistry, source: str, pins: Mapping[str, int] | None = None
    ) -> None:
        self._registry = registry
        self._source = source
        self._pins = dict(pins or {})
        """Type name -> the schema_version this service produces (default: the latest)."""
        self._codecs: dict[str, TypeCodec | None] = {}

    def codec(self, type_name: str) -> TypeCodec | None:
        try:
            return self._codecs[type_name]
        except KeyError:
            pass
        # raises UnknownEventType / UnknownSchemaVersion
        cls = self._registry.get(type_name, self._pins.get(type_name))
        codec = TypeCodec(cls, self._source) if set(cls.model_fields) == _ENVELOPE else None
        self._codecs[type_name] = codec
        return codec


_OVERSIZE = FieldError("<event>", "max_size", f"encoded size exceeds {MAX_EVENT_BYTES} B")


def oversize() -> InvalidEvent:
    """A new rejection of an oversized record (never a shared instance: see tracker.py)."""
    return InvalidEvent([_OVERSIZE])


CLOCK: tuple[int, bytes] = (-1, b"")
"""The current second and its ``YYYY-MM-DDTHH:MM:SS``, formatted once per second."""


def tick(second: int) -> tuple[int, bytes]:
    """Move :data:`CLOCK` to ``second`` and return it."""
    global CLOCK
    CLOCK = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S").encode())
    return CLOCK


def utc_now_iso() -> bytes:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` now, as :meth:`TypeCodec.encode` stamps it."""
    second, nanos = divmod(time_ns(), 1_000_000_000)
    clock = CLOCK
    if clock[0] != second:
        clock = tick(second)
    return b"%s.%06dZ" % (clock[1], nanos // 1000)


def _literal(part: bytes) -> bytes:
    """``part`` escaped for use in a ``%``-format template."""
    return part.replace(b"%", b"%%")


def _in_properties(exc: InvalidEvent) -> InvalidEvent:
    errors = [
        FieldError(
            "properties" if e.field == "<event>" else f"properties.{e.field}", e.rule, e.message
        )
        for e in exc.errors
    ]
    return InvalidEvent(errors)
