"""Renamed settings keep working: the base of every ``BRAINSTREAM_*`` settings model.

One unit convention: durations are ``*_seconds`` (floats); ``*_ms`` only where a librdkafka or
Kafka property of that name is meant (``session_timeout_ms`` is ``session.timeout.ms``).

A configuration model that renamed a field lists it in ``renamed`` (old field -> new field, or
``(new field, factor)`` when the unit changed too). The old name is still accepted, as a
keyword of the model and as its environment variable (``<env_prefix><OLD>``), unless the new
one is given too; a ``DeprecationWarning`` names the one to use. ``renamed_env`` lists old
variable names under another prefix. Only the process environment is consulted for old
variable names (not ``.env``).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, ClassVar

from pydantic import BaseModel, model_validator
from pydantic_settings import BaseSettings

Rename = str | tuple[str, float]
"""The new field name, or ``(new field name, factor from the old unit to the new one)``."""


def deprecated(old: str, new: str) -> None:
    """Warn that ``old`` (a setting's name or a value) is deprecated in favour of ``new``."""
    warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=3)


def _target(rename: Rename) -> tuple[str, float | None]:
    return (rename, None) if isinstance(rename, str) else rename


def _converted(value: Any, factor: float | None) -> Any:
    return value if factor is None or value is None else float(value) * factor


class Renamed(BaseModel):
    """A model whose old field names (``renamed``) are still accepted, with a warning."""

    renamed: ClassVar[dict[str, Rename]] = {}
    """Old field name -> its new name (or new name and unit factor)."""

    @model_validator(mode="before")
    @classmethod
    def _old_fields(cls, data: Any) -> Any:
        if not cls.renamed or not isinstance(data, dict) or not data.keys() & cls.renamed.keys():
            return data
        data = dict(data)
        for old, rename in cls.renamed.items():
            if old in data:
                new, factor = _target(rename)
                deprecated(old, new)
                value = _converted(data.pop(old), factor)
                data.setdefault(new, value)
        return data


class EnvSettings(BaseSettings):
    """``BaseSettings`` that also reads the old variable names of renamed fields."""

    renamed_env: ClassVar[dict[str, Rename]] = {}
    """Old variable name (any prefix) -> the field it now sets."""

    def __init__(self, **values: Any) -> None:
        prefix = str(self.model_config.get("env_prefix", ""))
        renamed: dict[str, Rename] = getattr(type(self), "renamed", {})
        old_names = {f"{prefix}{old}".upper(): r for old, r in renamed.items()}
        for old, rename in {**old_names, **self.renamed_env}.items():
            if old not in os.environ:
                continue
            field, factor = _target(rename)
            new = f"{prefix}{field}".upper()
            deprecated(old, new)
            if field not in values and new not in os.environ:
                values[field] = _converted(os.environ[old], factor)
        super().__init__(**values)
