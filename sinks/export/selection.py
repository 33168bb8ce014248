"""Which decoded events go into a dataset, and why the others do not (pure)."""

from __future__ import annotations

from collections.abc import Set
from enum import StrEnum

from schemas import Event
from sinks.export.config import Filters


class Outcome(StrEnum):
    EXPORTED = "exported"
    ERASED = "erased"
    FILTERED = "filtered"
    UNDECODABLE = "undecodable"
    """Refused by the acceptance rule (:func:`schemas.acceptance.judge`): not decodable, not
    valid, a header that contradicts the value, or too far ahead under ``reject``."""
    NOT_UPCAST = "not_upcast"
    """Decoded, but the upcaster chain to the latest version failed (a bug in an upcaster)."""
    NOT_ACCEPTED = "not_accepted"
    """Not forwarded by the raw sink: a later duplicate, refused, or of an erased user."""


class Selection:
    """Erasure first (an erased user is counted as erased even when a filter drops them too)."""

    def __init__(self, filters: Filters, erased: Set[str]) -> None:
        self._types = filters.event_types or None
        self._users = filters.user_ids or None
        self._sources = filters.sources or None
        self._erased = erased

    def outcome(self, event: Event) -> Outcome:
        if event.user_id in self._erased:
            return Outcome.ERASED
        if self._types is not None and event.type not in self._types:
            return Outcome.FILTERED
        if self._users is not None and event.user_id not in self._users:
            return Outcome.FILTERED
        if self._sources is not None and event.source not in self._sources:
            return Outcome.FILTERED
        return Outcome.EXPORTED
