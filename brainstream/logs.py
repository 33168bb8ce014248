"""Logging of every ``brainstream`` process: ``--log-level`` and ``--log-format text|json``.

JSON lines carry ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and, when there is
one, ``exc`` (the formatted traceback), so a log shipper needs no parsing rules.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

import orjson

LogFormat = Literal["text", "json"]
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class StderrHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    ``logging.StreamHandler()`` binds the stream it was created with. When that stream is a
    stand-in (an in-process CLI run under a test runner, ``contextlib.redirect_stderr``) that
    is later closed, every later record, from any thread, fails with "I/O operation on closed
    file". The standard library's own last-resort handler resolves ``sys.stderr`` the same way.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Replace the root logger's handlers with one stderr handler of ``fmt`` at ``level``."""
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
