"""Exceptions of the stream workers."""

from __future__ import annotations

from schemas.errors import BrainstreamError


class StreamsError(BrainstreamError):
    """Root of the workers' own errors."""


class UnknownWindow(StreamsError, ValueError):
    """A window name that the asked service does not know (``known`` lists its names): the
    rolling windows of ``streams.queries.WINDOWS``, or the dashboard's charted ones."""

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


class ApplyAbandoned(StreamsError):
    """The worker is stopping while a database fault keeps an apply from committing: the apply
    is given up, its records unacked (a restart or the partitions' next owner reads them again;
    the fences skip what was applied). ``partition`` is the source partition it was retrying."""

    def __init__(self, partition: int, cause: BaseException) -> None:
        self.partition = partition
        super().__init__(
            f"stopping: source partition {partition} not applied ({type(cause).__name__});"
            " its records are read again on restart"
        )
