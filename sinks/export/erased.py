"""The set of erased users, read once when an export begins (it is small).

Two sources, united: Postgres ``erased_users`` and the compacted erasures topic (key =
user_id, latest record wins; a tombstone withdraws the topic's entry). Either alone is enough
to keep a user out of an export.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from eventlog.db import erased_users
from eventlog.ranges import resolve
from eventlog.reader import LogReader, Message


def from_postgres(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        return erased_users(conn)


def from_topic(reader: LogReader) -> set[str]:
    erased: set[str] = set()
    for prange in resolve(reader.watermarks()):
        for batch in reader.read(prange):
            fold(erased, batch)
    return erased


def fold(erased: set[str], records: Iterable[Message]) -> None:
    """Apply erasure records in log order (pure apart from reading the messages)."""
    for msg in records:
        key: Any = msg.key()
        if not key:
            continue
        user_id = key.decode() if isinstance(key, bytes) else str(key)
        if msg.value() is None:
            erased.discard(user_id)
        else:
            erased.add(user_id)
