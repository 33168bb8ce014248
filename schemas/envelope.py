"""The event envelope every event type shares, and the bounded field types of the contract.

The system stores identifiers, not personal data: user ids are pseudonymous tokens (no ``@``,
no spaces), property models forbid unknown fields and bound every string and collection.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

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

UrlPath = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^/[^\s]*$")]
"""An application path (no scheme or host), e.g. ``/tasks/42``."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A short bounded label (mime type, provider name, endpoint template)."""


class Properties(BaseModel):
    """Base of every per-type property model: strict, frozen, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


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

    @field_validator("occurred_at", mode="after")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)
