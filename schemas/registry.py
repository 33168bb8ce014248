"""The registry of event types: one discriminated union on ``type``, open for extension.

A service adds its own type by subclassing :class:`~schemas.envelope.Event` with a ``Literal``
``type`` and decorating it with :func:`register`. Packages that declare an entry point in the
``brainstream.event_types`` group are imported on first use, so a sink or a worker learns new
types by installing the package that defines them: no change to the sink, no migration
(properties land in JSONB, aggregates are keyed by the type name).
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import Annotated, Any, TypeVar, Union, get_args

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import SchemaValidator

from schemas.envelope import BOUND_LIMITS, OUT_OF_RANGE, Event
from schemas.errors import FieldError, InvalidEvent, UnknownEventType
from schemas.plain import union_validator

ENTRY_POINT_GROUP = "brainstream.event_types"

E = TypeVar("E", bound=type[Event])


class EventRegistry:
    """Maps type names to event classes and validates raw input against their union."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._types: dict[str, type[Event]] = {}
        self._adapter: TypeAdapter[Event] | None = None
        self._plain: SchemaValidator | None = None
        self._lock = threading.RLock()
        self._entry_points_pending = load_entry_points

    def register(self, cls: E) -> E:
        """Add an event class; its name is the single value of its ``type`` Literal."""
        name = _type_name(cls)
        with self._lock:
            known = self._types.get(name)
            if known is not None and known is not cls:
                raise ValueError(f"event type {name!r} is already registered by {known!r}")
            cls.event_type = name
            self._types[name] = cls
            self._adapter = None
            self._plain = None
        return cls

    def get(self, name: str) -> type[Event]:
        self._load_entry_points()
        try:
            return self._types[name]
        except KeyError:
            raise UnknownEventType(
                [FieldError("type", "unknown_type", "is not a registered event type")]
            ) from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._types)

    def build(self, type_name: str, data: dict[str, Any]) -> Event:
        """Validate ``data`` (envelope fields, ``type`` optional) as an event of ``type_name``."""
        cls = self.get(type_name)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_event(exc, tagged=False) from None

    def validate_json(self, value: bytes | str) -> Event:
        """A record's JSON, in strict mode: JSON types as the JSON Schema gives them (a number
        is not a datetime, ``"1200"`` not an integer, ``true`` not a number)."""
        try:
            return self.adapter.validate_json(value, strict=True)
        except ValidationError as exc:
            raise invalid_event(exc, tagged=True) from None

    def validate_python(self, data: Any) -> Event:
        try:
            return self.adapter.validate_python(data)
        except ValidationError as exc:
            raise invalid_event(exc, tagged=True) from None

    @property
    def adapter(self) -> TypeAdapter[Event]:
        adapter = self._adapter
        if adapter is None:
            self._load_entry_points()
            with self._lock:
                classes = tuple(self._types[n] for n in sorted(self._types))
                union = Annotated[Union[classes], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
                adapter = self._adapter = TypeAdapter(union)
        return adapter

    @property
    def plain(self) -> SchemaValidator:
        """Validates JSON into a plain dict of the event (see :mod:`schemas.plain`); raises
        ``ValidationError`` for anything it does not mirror, which must then take
        :meth:`validate_json`: the model's path, which accepts it or names the errors."""
        plain = self._plain
        if plain is None:
            self._load_entry_points()
            with self._lock:
                plain = self._plain = union_validator(dict(self._types))
        return plain

    def _load_entry_points(self) -> None:
        if not self._entry_points_pending:
            return
        with self._lock:
            if not self._entry_points_pending:
                return
            self._entry_points_pending = False
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                importlib.import_module(ep.value.split(":")[0])


def _type_name(cls: type[Event]) -> str:
    field = cls.model_fields.get("type")
    args = get_args(field.annotation) if field is not None else ()
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{cls.__name__}.type must be annotated as Literal['name']")
    return args[0]


def invalid_event(exc: ValidationError, *, tagged: bool) -> InvalidEvent:
    """Turn pydantic's errors into field errors that name the field and never echo input."""
    errors: list[FieldError] = []
    unknown = False
    for err in exc.errors(include_url=False, include_input=False, include_context=True):
        loc = list(err["loc"])
        rule = err["type"]
        if rule in _LIMIT_RULES and BOUND_LIMITS.intersection(
            map(str, err.get("ctx", {}).values())
        ):
            rule = OUT_OF_RANGE  # a bound of the contract itself, not of the field
        if rule in ("union_tag_invalid", "union_tag_not_found"):
            unknown = rule == "union_tag_invalid"
            loc = ["type"]
        elif tagged and loc:
            loc = loc[1:]  # drop the union tag pydantic puts first
        field = ".".join(str(p) for p in loc) or "<event>"
        message = _MESSAGES.get(rule, err["msg"])
        errors.append(FieldError(field, rule, message))
    cls = UnknownEventType if unknown else InvalidEvent
    return cls(errors)


_LIMIT_RULES = frozenset({"greater_than_equal", "greater_than", "less_than", "less_than_equal"})

_MESSAGES = {
    OUT_OF_RANGE: "out of range",
    "finite_number": "must be a finite number",
    "union_tag_invalid": "is not a registered event type",
    "union_tag_not_found": "is required to tell the event type",
    "json_invalid": "is not valid JSON",
    "timezone_aware": "must carry a timezone (naive datetimes are rejected)",
}

REGISTRY = EventRegistry()
register = REGISTRY.register
