"""What the tracker reports through ``on_error``: one root, data-carrying subclasses."""

from __future__ import annotations

from pathlib import Path

from schemas import BrainstreamError, FieldError, InvalidEvent


class TrackingError(BrainstreamError):
    """Root of everything the SDK reports (never raised into the caller in default mode)."""


class EventRejected(TrackingError):
    """An event failed validation and was not sent. ``errors`` names each field."""

    def __init__(self, event_type: str, cause: InvalidEvent) -> None:
        self.event_type = event_type
        self.errors: list[FieldError] = list(cause.errors)
        super().__init__(f"{event_type} rejected: {cause}")

    @property
    def fields(self) -> list[str]:
        return [e.field for e in self.errors]


class EventsDropped(TrackingError):
    """Events were lost on purpose or by force, with the reason (``spool_full``, ...)."""

    def __init__(self, reason: str, count: int, detail: str = "") -> None:
        self.reason = reason
        self.count = count
        super().__init__(f"{count} event(s) dropped: {reason}" + (f" ({detail})" if detail else ""))


class DeliveryFailed(TrackingError):
    """The broker did not acknowledge events in time; they were spooled for a re-send."""

    def __init__(self, reason: str, count: int) -> None:
        self.reason = reason
        self.count = count
        super().__init__(f"{count} event(s) not delivered ({reason}); spooled for re-send")


class SpoolUnavailable(TrackingError):
    """Raised by the ``Tracker`` constructor (at start-up, never by ``track()``) when the spool
    directory cannot be created or written: a tracker without a spool would lose every event
    of a broker outage. Names the setting that fixes it."""

    def __init__(self, directory: Path, cause: OSError) -> None:
        self.directory = directory
        reason = cause.strerror or type(cause).__name__
        super().__init__(
            f"cannot use the spool directory {directory} ({reason}): set "
            "BRAINSTREAM_SDK_SPOOL_DIR (TrackerConfig.spool_dir) to a writable directory"
        )
