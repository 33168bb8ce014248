"""The producer SDK services embed: ``Tracker``, user context, ASGI/WSGI middleware.

tracker = Tracker.from_env(source="web")
with tracker.user("u-42"):
    tracker.track("page_view", path="/tasks/42")
"""

from producers.config import TrackerConfig
from producers.context import UserContext, current, user
from producers.counters import TrackerStats
from producers.errors import (
    DeliveryFailed,
    EventRejected,
    EventsDropped,
    SpoolUnavailable,
    TrackingError,
)
from producers.tracker import Tracker

__all__ = [
    "DeliveryFailed",
    "EventRejected",
    "EventsDropped",
    "SpoolUnavailable",
    "Tracker",
    "TrackerConfig",
    "TrackerStats",
    "TrackingError",
    "UserContext",
    "current",
    "user",
]
