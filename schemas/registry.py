"""The registry of event types, keyed by ``(type, schema_version)``, with their upcasters.

A service adds its own type by subclassing :class:`~schemas.envelope.Event` with a ``Literal``
``type`` and decorating it with :func:`register`. Packages that declare an entry point in the
``brainstream.event_types`` group are imported on first use, so a sink or a worker learns new
types by installing the package that defines them: no change to the sink, no migration
(properties land in JSONB, aggregates are keyed by the type name).

**Versions.** A class's version is the default of its ``schema_version`` field (``1`` unless it
declares ``schema_version: Literal[2] = 2``). Version 2 of a type is a second class registered
beside version 1; the highest registered version is the *latest*, which a type name alone
means (``get("page_view")``, ``Tracker.track("page_view", ...)``). Decoding picks the class
from the record's own ``schema_version``: a record of a version nobody registered is refused
with the rule ``unknown_schema_version`` (:class:`~schemas.errors.UnknownSchemaVersion`). A
record without ``schema_version`` is version 1, as the envelope's default has always said.

**Upcasters.** ``@upcaster("page_view", 1)`` registers a pure function that turns the
properties of a version-1 event (a JSON-compatible dict) into those of version 2.
:meth:`EventRegistry.upcast` chains them (1 -> 2 -> 3) and validates the result against the
latest model. Records are never rewritten: the raw table keeps what was written; consumers that
want the latest shape (the export, by default) upcast as they read (docs/evolution.md).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Annotated, Any, TypeVar, Union, get_args

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import CoreSchema, SchemaValidator, core_schema

from schemas.envelope import BOUND_LIMITS, NO_NUL_PATTERN, NUL_CHARACTER, OUT_OF_RANGE, Event
from schemas.errors import FieldError, InvalidEvent, UnknownEventType, UnknownSchemaVersion
from schemas.plain import properties_validator, union_validator

ENTRY_POINT_GROUP = "brainstream.event_types"

E = TypeVar("E", bound=type[Event])

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Properties of version N (a JSON-compatible dict, not to be mutated) -> those of N + 1."""

U = TypeVar("U", bound=Upcaster)

_Check = Callable[[dict[str, Any]], dict[str, Any]]
_Chain = tuple[tuple[Upcaster, ...], _Check | None]
"""The upcasters from one version to the latest, and the latest's properties check (``None``:
the version is the latest)."""


class EventRegistry:
    """Maps ``(type, schema_version)`` to event classes; validates raw input against them."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._types: dict[str, dict[int, type[Event]]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._latest: dict[str, int] = {}
        self._chains: dict[tuple[str, int], _Chain] = {}
        self._adapter: TypeAdapter[Event] | None = None
        self._validator: SchemaValidator | None = None
        self._plain: SchemaValidator | None = None
        self._lock = threading.RLock()
        self._entry_points_pending = load_entry_points

    # --- declaring -----------------------------------------------------------------------
    def register(self, cls: E) -> E:
        """Add an event class under its ``type`` Literal and its ``schema_version`` default.

        Raises ``ValueError`` when another class holds that ``(type, version)`` and
        ``TypeError`` when the class does not pin its type name or version.
        """
        name = _type_name(cls)
        version = schema_version_of(cls)
        with self._lock:
            versions = self._types.setdefault(name, {})
            known = versions.get(version)
            if known is not None and known is not cls:
                raise ValueError(
                    f"event type {name!r} v{version} is already registered by {known!r}"
                )
            cls.event_type = name
            versions[version] = cls
            self._changed()
        return cls

    def upcaster(
        self, type_name: str, from_version: int, *, replace: bool = False
    ) -> Callable[[U], U]:
        """Decorator: register ``fn`` as the upcaster of ``type_name`` from ``from_version``
        to ``from_version + 1``. Raises ``ValueError`` if that step already has one, unless
        ``replace`` (a corrected upcaster, in tests or inside :meth:`overlay`)."""

        def add(fn: U) -> U:
            key = (type_name, from_version)
            with self._lock:
                known = self._upcasters.get(key)
                if known is not None and known is not fn and not replace:
                    raise ValueError(
                        f"{type_name!r} v{from_version} -> v{from_version + 1} already has "
                        f"an upcaster: {known!r}"
                    )
                self._upcasters[key] = fn
                self._chains = {}
            return fn

        return add

    @contextmanager
    def overlay(self) -> Iterator[EventRegistry]:
        """Registrations made inside the block are undone at its end (tests, and a process
        that must try a new version without keeping it)."""
        self._load_entry_points()
        with self._lock:
            types = {name: dict(versions) for name, versions in self._types.items()}
            upcasters = dict(self._upcasters)
        try:
            yield self
        finally:
            with self._lock:
                self._types = types
                self._upcasters = upcasters
                self._changed()

    # --- looking up ----------------------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> type[Event]:
        """The class of ``name`` at ``version`` (the latest when ``None``).

        Raises :class:`UnknownEventType` or :class:`UnknownSchemaVersion`."""
        self._load_entry_points()
        versions = self._types.get(name)
        if not versions:
            raise UnknownEventType(
                [FieldError("type", "unknown_type", "is not a registered event type")]
            )
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise unknown_version(name, versions) from None

    def latest(self, name: str) -> int:
        """The highest registered version of ``name``; raises :class:`UnknownEventType`."""
        self._load_entry_points()
        try:
            return self._latest[name]
        except KeyError:
            self.get(name)  # raises UnknownEventType
            raise

    def versions(self, name: str) -> list[int]:
        """Registered versions of ``name``, ascending (empty for an unknown name)."""
        self._load_entry_points()
        return sorted(self._types.get(name, ()))

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._types)

    def upcasters(self) -> dict[tuple[str, int], Upcaster]:
        """``(type, from_version)`` -> upcaster, a copy."""
        self._load_entry_points()
        return dict(self._upcasters)

    # --- validating ----------------------------------------------------------------------
    def build(self, type_name: str, data: dict[str, Any], version: int | None = None) -> Event:
        """Validate ``data`` (envelope fields, ``type`` optional) as an event of ``type_name``
        at ``version`` (the latest when ``None``); ``schema_version`` is the class's own.

        Raises:
            InvalidEvent: ``data`` breaks the contract (``UnknownEventType``,
                ``UnknownSchemaVersion`` for an unregistered type or version).
        """
        cls = self.get(type_name, version)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_event(exc, tagged=False) from None

    def validate_json(self, value: bytes | str) -> Event:
        """A record's JSON, in strict mode: JSON types as the JSON Schema gives them (a number
        is not a datetime, ``"1200"`` not an integer, ``true`` not a number).

        Raises:
            InvalidEvent: not JSON, or not a valid event of a registered type and version.
        """
        try:
            event: Event = self.validator.validate_json(value, strict=True)
        except ValidationError as exc:
            unversioned = self._unversioned(exc)
            if unversioned is None:
                raise self._invalid(exc) from None
            try:
                return unversioned.model_validate_json(value, strict=True)
            except ValidationError as again:
                raise invalid_event(again, tagged=False) from None
        return event

    def validate_python(self, data: Any) -> Event:
        """Python data (a decoded JSON document) as its registered event class.

        Raises:
            InvalidEvent: not a valid event of a registered type and version.
        """
        try:
            event: Event = self.validator.validate_python(data)
        except ValidationError as exc:
            unversioned = self._unversioned(exc)
            if unversioned is None:
                raise self._invalid(exc) from None
            try:
                return unversioned.model_validate(data)
            except ValidationError as again:
                raise invalid_event(again, tagged=False) from None
        return event

    # --- upcasting -----------------------------------------------------------------------
    def upcast(self, type_name: str, version: int, properties: dict[str, Any]) -> dict[str, Any]:
        """``properties`` of ``type_name`` at ``version`` in the latest version's shape,
        through every upcaster from ``version`` up, validated by the latest model's rules.

        Returns ``properties`` itself when ``version`` is the latest. Raises
        :class:`InvalidEvent` (rule ``no_upcaster``) when a step of the chain is missing or
        (rule of the failed check, under ``properties.``) when the result breaks the latest
        model, and :class:`UnknownEventType` / :class:`UnknownSchemaVersion`."""
        chain = self._chains.get((type_name, version))
        if chain is None:
            chain = self._chain(type_name, version)
        steps, check = chain
        if check is None:  # the latest version
            return properties
        for step in steps:
            properties = step(properties)
        return check(properties)

    def _chain(self, type_name: str, version: int) -> _Chain:
        """The upcasters from ``version`` to the latest and the latest's check, cached; raises
        (nothing cached) for an unknown type or version and a missing step."""
        latest = self.latest(type_name)
        self.get(type_name, version)  # raises for a version nobody registered
        if version == latest:
            chain: _Chain = ((), None)
        else:
            steps = []
            for step in range(version, latest):
                fn = self._upcasters.get((type_name, step))
                if fn is None:
                    raise InvalidEvent(
                        [
                            FieldError(
                                "schema_version",
                                "no_upcaster",
                                f"no upcaster from v{step} to v{step + 1} of {type_name}",
                            )
                        ],
                        "upcast",
                    )
                steps.append(fn)
            chain = (tuple(steps), _properties_check(self.get(type_name)))
        with self._lock:
            self._chains[(type_name, version)] = chain
        return chain

    def to_latest(self, event: Event) -> Event:
        """``event`` as an instance of its type's latest class (``event`` itself when it is
        already at the latest version); raises as :meth:`upcast`."""
        latest = self.get(event.type)
        if type(event) is latest:
            return event
        props = event.properties
        written = props.__pydantic_serializer__.to_python(props, mode="json", exclude_none=True)
        upcast = self.upcast(event.type, event.schema_version, written)
        fields = {name: value for name, value in event if name != "properties"}
        fields["schema_version"] = schema_version_of(latest)
        props_cls = latest.model_fields["properties"].annotation
        return latest.model_construct(
            event.model_fields_set | {"schema_version"},
            **fields,
            properties=props_cls.model_validate(upcast),  # type: ignore[union-attr]
        )

    # --- compiled validators -------------------------------------------------------------
    @property
    def adapter(self) -> TypeAdapter[Event]:
        """The union of the latest version of every type, discriminated by ``type`` (for the
        union JSON Schema; decoding uses :attr:`validator`, which knows every version)."""
        adapter = self._adapter
        if adapter is None:
            self._load_entry_points()
            with self._lock:
                classes = tuple(self.get(n) for n in sorted(self._types))
                union = Annotated[Union[classes], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
                adapter = self._adapter = TypeAdapter(union)
        return adapter

    @property
    def validator(self) -> SchemaValidator:
        """Validates into model instances: a tagged union on ``type``, each choice a tagged
        union on ``schema_version``."""
        validator = self._validator
        if validator is None:
            self._load_entry_points()
            with self._lock:
                choices: dict[Any, CoreSchema] = {}
                for name, versions in sorted(self._types.items()):
                    choices[name] = core_schema.tagged_union_schema(
                        {v: cls.__pydantic_core_schema__ for v, cls in sorted(versions.items())},
                        discriminator="schema_version",
                    )
                validator = self._validator = SchemaValidator(
                    core_schema.tagged_union_schema(choices, discriminator="type")
                )
        return validator

    @property
    def plain(self) -> SchemaValidator:
        """Validates JSON into a plain dict of the event (see :mod:`schemas.plain`); raises
        ``ValidationError`` for anything it does not mirror, which must then take
        :meth:`validate_json`: the model's path, which accepts it or names the errors."""
        plain = self._plain
        if plain is None:
            self._load_entry_points()
            with self._lock:
                plain = self._plain = union_validator(
                    {name: dict(versions) for name, versions in self._types.items()}
                )
        return plain

    def _changed(self) -> None:
        self._latest = {name: max(versions) for name, versions in self._types.items() if versions}
        self._chains = {}
        self._adapter = None
        self._validator = None
        self._plain = None

    def _unversioned(self, exc: ValidationError) -> type[Event] | None:
        """The version-1 class when ``exc`` says only that a record of a known type carries no
        ``schema_version`` (version 1 by the envelope's default); else ``None``."""
        errors = exc.errors(include_url=False, include_input=False)
        if len(errors) != 1 or errors[0]["type"] != "union_tag_not_found":
            return None
        loc = errors[0]["loc"]
        if len(loc) != 1 or not isinstance(loc[0], str):
            return None
        return self._types.get(loc[0], {}).get(1)

    def _invalid(self, exc: ValidationError) -> InvalidEvent:
        errors = exc.errors(include_url=False, include_input=False)
        for err in errors:
            if err["type"] in ("union_tag_invalid", "union_tag_not_found") and len(err["loc"]):
                name = err["loc"][0]
                if isinstance(name, str) and name in self._types:
                    return unknown_version(name, self._types[name])
        return invalid_event(exc, tagged=True, tags=2)

    def _load_entry_points(self) -> None:
        if not self._entry_points_pending:
            return
        with self._lock:
            if not self._entry_points_pending:
                return
            self._entry_points_pending = False
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                importlib.import_module(ep.value.split(":")[0])


def _properties_check(cls: type[Event]) -> _Check:
    """Validates properties by ``cls``'s rules into their JSON-compatible dict: the plain
    validator (:mod:`schemas.plain`) when the model has one, else the model."""
    props_cls = cls.model_fields["properties"].annotation
    if not (isinstance(props_cls, type) and issubclass(props_cls, BaseModel)):
        raise TypeError(f"{cls.__name__}.properties is not a model")
    validate = props_cls.__pydantic_validator__.validate_python
    serializer = props_cls.__pydantic_serializer__
    fast = properties_validator(props_cls)  # type: ignore[arg-type]

    def check(props: dict[str, Any]) -> dict[str, Any]:
        if fast is not None:
            try:
                return fast(props)
            except ValidationError:
                pass  # the model decides: it accepts (a case the plain rules leave out) or names
        try:
            model = validate(props)
        except ValidationError as exc:
            inner = invalid_event(exc, tagged=False)
            raise InvalidEvent(
                [FieldError(f"properties.{e.field}", e.rule, e.message) for e in inner.errors],
                "upcast",
            ) from None
        out: dict[str, Any] = serializer.to_python(model, mode="json", exclude_none=True)
        return out

    return check


def schema_version_of(cls: type[Event]) -> int:
    """The version a class stands for: its ``schema_version`` default.

    Raises:
        TypeError: the default is not an int from 1 to 1000, or ``type`` is not annotated as
            ``Literal['name']`` (a programming error in the event class).
    """
    default = cls.model_fields["schema_version"].default
    if type(default) is not int or not 1 <= default <= 1000:
        raise TypeError(f"{cls.__name__}.schema_version must default to an int from 1 to 1000")
    return default


def unknown_version(name: str, versions: dict[int, type[Event]]) -> UnknownSchemaVersion:
    known = ", ".join(str(v) for v in sorted(versions))
    return UnknownSchemaVersion(
        [
            FieldError(
                "schema_version",
                "unknown_schema_version",
                f"is not a registered version of {name} (registered: {known})",
            )
        ]
    )


def _type_name(cls: type[Event]) -> str:
    field = cls.model_fields.get("type")
    args = get_args(field.annotation) if field is not None else ()
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{cls.__name__}.type must be annotated as Literal['name']")
    return args[0]


def invalid_event(exc: ValidationError, *, tagged: bool, tags: int = 1) -> InvalidEvent:
    """Turn pydantic's errors into field errors that name the field and never echo input.

    ``tagged``: ``exc`` comes from a tagged union, whose ``tags`` leading location parts (the
    type name, and the version under it) are dropped."""
    errors: list[FieldError] = []
    unknown = False
    for err in exc.errors(include_url=False, include_input=False, include_context=True):
        loc = list(err["loc"])
        rule = err["type"]
        if rule in _LIMIT_RULES and BOUND_LIMITS.intersection(
            map(str, err.get("ctx", {}).values())
        ):
            rule = OUT_OF_RANGE  # a bound of the contract itself, not of the field
        elif (
            rule == "string_pattern_mismatch"
            and err.get("ctx", {}).get("pattern") == NO_NUL_PATTERN
        ):
            rule = NUL_CHARACTER
        if rule in ("union_tag_invalid", "union_tag_not_found"):
            unknown = rule == "union_tag_invalid"
            loc = ["type"]
        elif tagged and loc:
            loc = loc[tags:]  # drop the union tags pydantic puts first
        field = ".".join(str(p) for p in loc) or "<event>"
        message = _MESSAGES.get(rule, err["msg"])
        errors.append(FieldError(field, rule, message))
    cls = UnknownEventType if unknown else InvalidEvent
    return cls(errors)


_LIMIT_RULES = frozenset({"greater_than_equal", "greater_than", "less_than", "less_than_equal"})

_MESSAGES = {
    OUT_OF_RANGE: "out of range",
    NUL_CHARACTER: "must not contain U+0000",
    "finite_number": "must be a finite number",
    "union_tag_invalid": "is not a registered event type",
    "union_tag_not_found": "is required to tell the event type",
    "json_invalid": "is not valid JSON",
    "timezone_aware": "must carry a timezone (naive datetimes are rejected)",
}

REGISTRY = EventRegistry()
register = REGISTRY.register
upcaster = REGISTRY.upcaster
