"""Identifiers: UUIDv7 event ids (time-ordered, made by the producer: the idempotency key)."""

from __future__ import annotations

import uuid

import uuid_utils


def new_event_id() -> uuid.UUID:
    """A fresh UUIDv7 as a standard-library ``uuid.UUID``."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def uuid7_millis(event_id: uuid.UUID) -> int:
    """The Unix-millisecond timestamp embedded in a UUIDv7."""
    return event_id.int >> 80
