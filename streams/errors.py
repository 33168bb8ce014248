"""Exceptions of the stream workers."""

from __future__ import annotations

from schemas.errors import BrainstreamError


class StreamsError(BrainstreamError):
    """Root of the workers' own errors."""


class UnknownWindow(StreamsError):
    """A rolling window name that ``streams.queries.WINDOWS`` does not know."""

    def __init__(self, window: str, known: tuple[str, ...]) -> None:
        self.window = window
        self.known = known
        super().__init__(f"unknown window {window!r}; use one of {', '.join(known)}")


class UnsupportedKafkaSecurity(StreamsError):
    """A Kafka security setting the Faust (aiokafka) client cannot express."""

    def __init__(self, setting: str, value: str) -> None:
        self.setting = setting
        self.value = value
        super().__init__(f"the worker does not support {setting}={value}")
