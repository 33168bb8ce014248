"""Time buckets by event time (UTC), at minute, hour and day granularity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from schemas.db import GRANULARITIES

Granularity = Literal["minute", "hour", "day"]

STEP: Final[dict[str, timedelta]] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
assert tuple(STEP) == GRANULARITIES


def truncate(moment: datetime, granularity: str) -> datetime:
    """The start of the bucket holding ``moment`` (aware; the result is UTC).

    Raises:
        ValueError: ``granularity`` is not ``minute``, ``hour`` or ``day``.
    """
    utc = moment.astimezone(UTC)
    if granularity == "minute":
        return utc.replace(second=0, microsecond=0)
    if granularity == "hour":
        return utc.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        return utc.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown granularity {granularity!r}")


def buckets_of(moment: datetime) -> tuple[tuple[str, datetime], ...]:
    """``(granularity, bucket start)`` of ``moment`` at every granularity."""
    utc = moment.astimezone(UTC)
    minute = utc.replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    return (("minute", minute), ("hour", hour), ("day", hour.replace(hour=0)))
