"""Exceptions of the contract: one root, data-carrying subclasses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One violated rule: where (dotted path), which rule, and a message without input values."""

    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


class BrainstreamError(Exception):
    """Root of every error brainstream raises on purpose."""


class InvalidEvent(BrainstreamError):
    """An event that breaks the contract. ``errors`` names each field and rule.

    Messages never echo input values: events may carry identifiers we must not leak into logs.
    """

    def __init__(self, errors: list[FieldError], stage: str = "validate") -> None:
        self.errors = errors
        self.stage = stage
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid event")

    @property
    def fields(self) -> list[str]:
        return [e.field for e in self.errors]


class UnknownEventType(InvalidEvent):
    """The ``type`` discriminator names no registered event type."""


class UnknownSchemaVersion(InvalidEvent):
    """The record's ``schema_version`` is not a registered version of its (known) type: rule
    ``unknown_schema_version``. Upgrade the consumer (install the package that declares the
    version) and replay the dead letters."""
