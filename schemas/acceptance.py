"""The acceptance rule: what every consumer of the raw event log does with one record.

:func:`judge` decides, for a record's value, headers and Kafka timestamp, one of:

- :class:`Accept` with ``clamped=False``: the event as written;
- :class:`Accept` with ``clamped=True``: ``occurred_at`` lies more than
  ``future_skew_seconds`` after the record's timestamp and the policy is ``clamp``: the event
  is kept at the record's time, its own time kept in ``properties._original_occurred_at``;
- :class:`Reject`: the stage (``decode`` or ``validate``) and the named rules that refused it
  (contract rules, ``schema_version_mismatch``, ``future_skew`` under the ``reject`` policy,
  ``internal_error`` for a fault of the decoder on this one record).

The raw sink stores exactly the accepted records (and dead-letters the rejected ones); the
aggregate worker reads only what the sink stored (the accepted stream); the export applies the
same function to every record it reads, from the accepted stream's offsets or from the raw log.
A record is therefore accepted by all of them or by none, and clamped to the same time.

The rule compares with the record's own timestamp, never with ``now()``: a redelivered record
gets the same verdict. One setting, read by every process: ``BRAINSTREAM_FUTURE_SKEW_SECONDS``
(3600) and ``BRAINSTREAM_FUTURE_POLICY`` (``clamp`` | ``reject``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from schemas.codec import RecordHeaders, decode, header_mismatch
from schemas.envelope import Event
from schemas.errors import FieldError, InvalidEvent
from schemas.settings import EnvSettings, Rename, deprecated

FuturePolicy = Literal["clamp", "reject"]

FUTURE_SKEW = "future_skew"
"""The rule of a record refused for an ``occurred_at`` too far after its record time."""
INTERNAL_ERROR = "internal_error"
"""The rule of a rejection that no rule of the contract names: a fault while handling it."""
ORIGINAL_OCCURRED_AT = "_original_occurred_at"
"""Key added to ``properties`` when a future ``occurred_at`` was clamped."""

_DECODE_RULES = frozenset({"json_invalid", "json_type", "empty", "max_size"})
_FUTURE = FieldError("occurred_at", FUTURE_SKEW, "is too far after the record time")


class AcceptanceRule(BaseModel):
    """The settings of the acceptance rule (see the module's docstring)."""

    model_config = ConfigDict(frozen=True)

    future_skew_seconds: float = Field(default=3_600, ge=0)
    """How far ``occurred_at`` may lie after the Kafka record's (broker) timestamp."""
    future_policy: FuturePolicy = "clamp"
    """``clamp``: keep the event at the record's time (its own in
    ``properties._original_occurred_at``); ``reject``: refuse it (rule ``future_skew``)."""

    @field_validator("future_policy", mode="before")
    @classmethod
    def _old_word(cls, value: Any) -> Any:
        if value == "dlq":
            deprecated("future policy 'dlq'", "'reject'")
            return "reject"
        return value

    def too_far_ahead(self, occurred_at: datetime, timestamp_ms: int | None) -> bool:
        """Whether ``occurred_at`` lies more than the skew after ``timestamp_ms`` (epoch ms;
        ``None`` or ``<= 0``: the record has no time, so nothing is compared)."""
        if timestamp_ms is None or timestamp_ms <= 0:
            return False
        return occurred_at.timestamp() * 1000 > timestamp_ms + self.future_skew_seconds * 1000

    def safe_until(self, timestamps_ms: Iterable[int]) -> datetime | None:
        """An instant no record of a batch with these timestamps counts as too far ahead at or
        before (``None``: no record has a timestamp, so none is checked). A consumer compares
        with it first and runs :meth:`too_far_ahead` only for events after it; it is a
        millisecond early to stay clear of float rounding."""
        stamps = [ts for ts in timestamps_ms if ts > 0]
        if not stamps:
            return None
        try:
            return datetime.fromtimestamp(
                (min(stamps) + self.future_skew_seconds * 1000 - 1) / 1000, UTC
            )
        except (OverflowError, ValueError, OSError):  # a skew beyond year 9999: nothing is ahead
            return datetime.max.replace(tzinfo=UTC)


class AcceptanceSettings(AcceptanceRule, EnvSettings):
    """``BRAINSTREAM_FUTURE_SKEW_SECONDS`` and ``BRAINSTREAM_FUTURE_POLICY``, read by the sink,
    ``replay --to raw`` and the export alike."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_", env_file=".env", extra="ignore", frozen=True
    )
    renamed_env: ClassVar[dict[str, Rename]] = {
        "BRAINSTREAM_SINK_FUTURE_SKEW_SECONDS": "future_skew_seconds",
        "BRAINSTREAM_SINK_FUTURE_POLICY": "future_policy",
    }

    def rule(self) -> AcceptanceRule:
        """The plain rule (picklable, without the environment)."""
        return AcceptanceRule(**self.model_dump())


@dataclass(frozen=True, slots=True)
class Accept:
    """An accepted record: its event and the time every projection stores for it."""

    event: Event
    occurred_at: datetime
    """The event's own time, or the record's time when ``clamped``."""
    clamped: bool = False

    def properties(self) -> dict[str, Any]:
        """The properties as JSON-ready data (``None`` fields omitted), with the original
        ``occurred_at`` under :data:`ORIGINAL_OCCURRED_AT` when clamped."""
        props = self.event.properties.model_dump(mode="json", exclude_none=True)
        return self.with_original(props)

    def properties_json(self) -> str:
        """:meth:`properties` as compact JSON text."""
        if self.clamped:
            return orjson.dumps(self.properties()).decode()
        props = self.event.properties
        return props.__pydantic_serializer__.to_json(props, exclude_none=True).decode()

    def with_original(self, props: dict[str, Any]) -> dict[str, Any]:
        """``props`` with the original ``occurred_at`` added when clamped (as is otherwise)."""
        if not self.clamped:
            return props
        return {**props, ORIGINAL_OCCURRED_AT: self.event.occurred_at.isoformat()}


@dataclass(frozen=True, slots=True)
class Reject:
    """A refused record: where it failed and the rules it broke (no input values)."""

    stage: str
    """``decode`` or ``validate``."""
    error_class: str
    errors: tuple[FieldError, ...]

    @property
    def reason(self) -> str:
        """The first rule broken, e.g. ``future_skew`` or ``unknown_schema_version``."""
        return self.errors[0].rule if self.errors else INTERNAL_ERROR


Verdict = Accept | Reject


def judge(
    value: bytes | None,
    headers: RecordHeaders,
    timestamp_ms: int | None,
    rule: AcceptanceRule,
) -> Verdict:
    """The verdict on one raw record: its value, its headers (the ``bs.schema_version`` header,
    when present, must agree with the value) and its Kafka timestamp in epoch milliseconds
    (``None`` or ``<= 0``: none, and the future-skew rule does not apply).

    Never raises for a record: a fault of the decoder is a :class:`Reject` at stage ``decode``
    with the rule ``internal_error`` (the exception's class is kept, never its message: it may
    quote the input)."""
    try:
        event = decode(value)
    except InvalidEvent as exc:
        return rejection(exc)
    except Exception as exc:
        return fault("decode", exc)
    mismatch = header_mismatch(headers, event.schema_version)
    if mismatch is not None:
        return Reject("validate", "InvalidEvent", (mismatch,))
    return judge_time(event, timestamp_ms, rule)


def judge_time(event: Event, timestamp_ms: int | None, rule: AcceptanceRule) -> Verdict:
    """The future-skew part of :func:`judge`, for an event already decoded from its record."""
    if not rule.too_far_ahead(event.occurred_at, timestamp_ms):
        return Accept(event, event.occurred_at)
    if rule.future_policy == "reject":
        return Reject("validate", "FutureTimestamp", (_FUTURE,))
    assert timestamp_ms is not None  # too_far_ahead compares with a timestamp
    return Accept(event, datetime.fromtimestamp(timestamp_ms / 1000, UTC), clamped=True)


def rejection(exc: InvalidEvent) -> Reject:
    """The verdict for a contract violation (stage ``decode`` for undecodable bytes)."""
    decoding = exc.stage == "decode" or any(e.rule in _DECODE_RULES for e in exc.errors)
    return Reject("decode" if decoding else "validate", type(exc).__name__, tuple(exc.errors))


def fault(stage: str, exc: BaseException) -> Reject:
    """The verdict for an unexpected failure on one record at ``stage`` (the caller, who knows
    the record's coordinates, logs it)."""
    error = FieldError("<event>", INTERNAL_ERROR, f"{stage} failed ({type(exc).__name__})")
    return Reject(stage, type(exc).__name__, (error,))
