"""The event envelope every event type shares, and the bounded field types of the contract.

The system stores identifiers, not personal data: user ids are pseudonymous tokens (no ``@``,
no spaces), property models forbid unknown fields and bound every string and collection.

The contract also bounds every value to what each consumer can hold (one place: :func:`bounded`,
applied to the envelope and to every :class:`Properties` model, built-in or registered):

- datetimes lie in ``[OCCURRED_MIN, OCCURRED_MAX)``, compared as instants, so the UTC
  normalisation cannot overflow and Postgres ``timestamptz``, Parquet ``timestamp[us]``,
  Kafka's and UUIDv7's unsigned epoch milliseconds and Python's ``datetime`` (year 1-9999, with
  a year to spare for window arithmetic) all hold them;
- integers fit in signed 64 bits (Postgres ``bigint``, Parquet ``int64``, orjson, JSON readers
  of other languages); a tighter bound of the field wins;
- floats are finite (JSON has no NaN or infinity: serialisers would write ``null``);
- strings hold no U+0000 (Postgres ``text`` and ``jsonb`` cannot store it).

Integers, floats, booleans and datetimes are strict JSON types: ``true`` is not an integer,
``"1200"`` is not a number and a number is not a datetime (``schemas.decode`` also validates in
strict mode). A value beyond a bound is refused with the rule ``out_of_range``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    field_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from schemas.ids import new_event_id

MAX_EVENT_BYTES = 32 * 1024
"""Upper bound of one encoded event (the Kafka record value)."""

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"

UserId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_ID_PATTERN)]
"""Pseudonymous user id: letters, digits and ``_.:-`` only, so e-mails and names cannot pass."""

ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_ID_PATTERN)]
"""Id of a thing the user acted on (task, file, project)."""

SourceName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
]
"""The emitting service, lower-case (``web``, ``billing-api``)."""

FieldName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
]
"""A field *name* (never its value), e.g. which profile fields changed."""

UrlPath = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^/[^\s\x00]*$")]
"""An application path (no scheme or host), e.g. ``/tasks/42``."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A short bounded label (mime type, provider name, endpoint template)."""


OCCURRED_MIN = datetime(1970, 1, 1, tzinfo=UTC)
"""Earliest instant of any datetime of the contract (inclusive): the Unix epoch, below which
Kafka timestamps, UUIDv7 ids and some platforms' ``fromtimestamp`` have no value."""
OCCURRED_MAX = datetime(9999, 1, 1, tzinfo=UTC)
"""Bound of any datetime of the contract (exclusive): a year short of Python's ``datetime.max``,
so normalising any offset and adding any rolling window stays representable."""
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
"""Bounds of any integer of the contract (signed 64 bits)."""

NO_NUL_PATTERN = r"^[^\x00]*$"
"""The pattern :func:`bounded` gives a string that has none of its own."""
NUL_CHARACTER = "nul_character"
"""The rule named when a string holds U+0000."""

OUT_OF_RANGE = "out_of_range"
"""The rule named when a value is beyond a bound of the contract (not of its field)."""
BOUND_LIMITS: frozenset[str] = frozenset(
    {
        str(INT_MIN),
        str(INT_MAX),
        *(t.isoformat().replace("+00:00", "Z") for t in (OCCURRED_MIN, OCCURRED_MAX)),
    }
)
"""The limits :func:`bounded` sets, as pydantic's error context gives them: an error at one of
them is reported as ``out_of_range``."""


def bounded(schema: CoreSchema) -> CoreSchema:
    """Put the contract's bounds on every leaf of a core schema, in place; returns it.

    ``int``: strict, within signed 64 bits unless the field has its own bound on that side;
    ``float``: strict, finite; ``bool``: strict; ``datetime``: strict, within
    ``[OCCURRED_MIN, OCCURRED_MAX)`` intersected with the field's own bounds; ``str``: no
    U+0000, by :data:`NO_NUL_PATTERN` when it has no pattern, by its own pattern when that
    provably excludes U+0000, else by :func:`no_nul` after it (which :mod:`schemas.plain`
    mirrors). Idempotent.
    """
    _bound(schema)
    return schema


def no_nul(value: str) -> str:
    """Refuse U+0000 (rule ``nul_character``): the guard of a string whose pattern admits it."""
    if "\x00" in value:
        raise PydanticCustomError(NUL_CHARACTER, "must not contain U+0000")
    return value


def _admits_nul(pattern: str) -> bool:
    """False only when ``pattern`` provably matches no string holding U+0000: no ``.``, no
    ``\\S``/``\\D``/``\\W``/``\\p``/code-point escapes outside a negated class, and every
    negated class lists ``\\x00``. Anything it cannot read counts as admitting."""
    if "\x00" in pattern:
        return True
    i, n = 0, len(pattern)
    in_class = negated = has_nul = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            esc = pattern[i + 1 : i + 2]
            if in_class and negated:
                has_nul = (
                    has_nul or pattern[i : i + 4] == "\\x00" or pattern[i : i + 6] == "\\u0000"
                )
            elif esc in ("", "x", "u", "U", "0", "c", "N", "S", "D", "W", "p", "P", "X") or (
                esc.isdigit()
            ):
                return True
            i += 2
            continue
        if in_class:
            if c == "[":
                return True  # nested class or set operation: not read here
            if c == "]":
                if negated and not has_nul:
                    return True
                in_class = False
            i += 1
            continue
        if c == "[":
            in_class, negated, has_nul = True, pattern[i + 1 : i + 2] == "^", False
            i += 2 if negated else 1
            if pattern[i : i + 1] == "]":
                i += 1  # a leading ']' is literal
            continue
        if c == ".":
            return True
        i += 1
    return in_class


def _bound(node: Any) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "function-after" and node["function"].get("function") is no_nul:
            return  # bounded already
        if kind == "str":
            pattern = node.get("pattern")
            if pattern is None:
                node["pattern"] = NO_NUL_PATTERN
            elif isinstance(pattern, str) and _admits_nul(pattern):
                inner = dict(node)
                node.clear()
                node.update(core_schema.no_info_after_validator_function(no_nul, inner))
            return
        if kind == "int":
            node["strict"] = True
            if node.get("le") is None and node.get("lt") is None:
                node["le"] = INT_MAX
            if node.get("ge") is None and node.get("gt") is None:
                node["ge"] = INT_MIN
        elif kind == "float":
            node["strict"] = True
            node["allow_inf_nan"] = False
        elif kind == "bool":
            node["strict"] = True
        elif kind == "datetime":
            node["strict"] = True
            if node.get("ge") is None and node.get("gt") is None:
                node["ge"] = OCCURRED_MIN
            if node.get("lt") is None and node.get("le") is None:
                node["lt"] = OCCURRED_MAX
        for key, value in node.items():
            if key not in ("metadata", "cls", "ref", "config"):
                _bound(value)
    elif isinstance(node, list | tuple):
        for item in node:
            _bound(item)


class Properties(BaseModel):
    """Base of every per-type property model: strict, frozen, unknown fields rejected, every
    value within the contract's bounds (:func:`bounded`), for subclasses too."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler, /
    ) -> CoreSchema:
        return bounded(handler(source))


class Event(BaseModel):
    """The envelope. Subclasses pin ``type`` to a ``Literal`` and ``properties`` to their model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID = Field(default_factory=new_event_id)
    type: str
    user_id: UserId
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    source: SourceName
    schema_version: int = Field(default=1, ge=1, le=1000)
    properties: Properties

    event_type: ClassVar[str] = ""
    """The registered name; set by ``schemas.registry.register``."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler, /
    ) -> CoreSchema:
        return bounded(handler(source))

    @field_validator("occurred_at", mode="after")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        # Bounded before this runs (OCCURRED_MIN..OCCURRED_MAX), so it cannot overflow; the
        # guard keeps a custom subclass that loosens the bound on the rejection side.
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise PydanticCustomError(OUT_OF_RANGE, "out of range") from None
