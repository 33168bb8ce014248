"""Erasure of one user's raw events (GDPR), race-free against concurrent sink batches.

Every sink batch holds the erasure lock in shared mode and drops events of users listed in
``erased_users``; an erasure holds it exclusively. So a batch that started before the erasure
commits is fully written before it (and then deleted by it), and every later batch sees the user
as erased.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Producer
from psycopg import sql

from eventlog.clients import producer_conf
from eventlog.db import Connection
from schemas import BrainstreamError
from schemas.db import ERASED_USERS_TABLE, ERASURE_LOCK_KEY, EVENTS_TABLE

AggregateEraser = Callable[[Connection, str], None]


class ErasureNotPublished(BrainstreamError, RuntimeError):
    """The erasure is committed in Postgres but the erasures topic did not acknowledge it.

    Until it is published, consumers that learn of erasures from the topic alone do not know
    of it. Re-running the erasure is idempotent and publishes it again."""

    def __init__(self, user_id: str, topic: str, timeout: float, cause: object) -> None:
        super().__init__(
            f"user {user_id!r} is erased in Postgres, but topic {topic!r} did not acknowledge "
            f"the erasure within {timeout:g} s ({cause}): re-run erase-user once Kafka is "
            "reachable (it is idempotent); check BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS"
        )


@dataclass(frozen=True, slots=True)
class ErasureReport:
    user_id: str
    newly_erased: bool
    rows_deleted: int
    erased_at: datetime


def lock_exclusive(conn: Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ERASURE_LOCK_KEY,))


def record_erasure(conn: Connection, user_id: str, reason: str | None) -> tuple[bool, datetime]:
    """Insert into ``erased_users`` (first erasure time kept); returns (new?, erased_at)."""
    table = sql.Identifier(ERASED_USERS_TABLE)
    inserted = conn.execute(
        sql.SQL(
            "INSERT INTO {} (user_id, reason) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1"
        ).format(table),
        (user_id, reason),
    ).fetchone()
    row = conn.execute(
        sql.SQL("SELECT erased_at FROM {} WHERE user_id = %s").format(table), (user_id,)
    ).fetchone()
    assert row is not None
    return inserted is not None, row[0]


def delete_user_rows(conn: Connection, user_id: str) -> int:
    return conn.execute(
        sql.SQL("DELETE FROM {} WHERE user_id = %s").format(sql.Identifier(EVENTS_TABLE)),
        (user_id,),
    ).rowcount


def erase_user(
    conn: Connection,
    user_id: str,
    *,
    reason: str | None = None,
    aggregates: AggregateEraser | None = None,
) -> ErasureReport:
    """ONE transaction: exclusive lock, record, delete raw rows, erase aggregates. Idempotent."""
    with conn.transaction():
        lock_exclusive(conn)
        new, erased_at = record_erasure(conn, user_id, reason)
        if aggregates is not None:  # first: it may read the raw rows it subtracts
            aggregates(conn, user_id)
        deleted = delete_user_rows(conn, user_id)
    return ErasureReport(user_id, new, deleted, erased_at)


def record_erased(conn: Connection, users: Iterable[str], reason: str = "erasures topic") -> int:
    """Make ``erased_users`` know every user in ``users`` and delete any raw row of theirs, in
    ONE transaction under the exclusive erasure lock; returns how many were new here.

    A rebuild calls it with the erasures topic before it writes (a fresh schema after
    ``db migrate`` knows no erasure): the writer then drops their events, and so does the live
    sink afterwards."""
    wanted = sorted(set(users))
    if not wanted:
        return 0
    table, events = sql.Identifier(ERASED_USERS_TABLE), sql.Identifier(EVENTS_TABLE)
    with conn.transaction():
        lock_exclusive(conn)
        new = conn.execute(
            sql.SQL(
                "INSERT INTO {} (user_id, reason) SELECT u, %s FROM unnest(%s::text[]) AS u"
                " ON CONFLICT DO NOTHING"
            ).format(table),
            (reason, wanted),
        ).rowcount
        conn.execute(sql.SQL("DELETE FROM {} WHERE user_id = ANY(%s)").format(events), (wanted,))
    return new


def erasure_record(report: ErasureReport) -> tuple[bytes, bytes]:
    """Key and value of the compacted erasures topic (key = user_id: latest wins, kept forever)."""
    value = {"user_id": report.user_id, "erased_at": report.erased_at.isoformat()}
    return report.user_id.encode(), json.dumps(value, separators=(",", ":")).encode()


def publish_erasure(
    kafka_conf: dict[str, Any], topic: str, report: ErasureReport, timeout: float = 30.0
) -> None:
    """Produce and wait up to ``timeout`` seconds for the broker's acknowledgement.

    Raises:
        ErasureNotPublished: no acknowledgement (broker unreachable, refused, timed out).
    """
    errors: list[Any] = []
    producer = Producer(producer_conf(kafka_conf))
    key, value = erasure_record(report)
    producer.produce(topic, value, key, on_delivery=lambda err, _m: errors.append(err))
    remaining = producer.flush(timeout)
    if remaining or any(e is not None for e in errors) or not errors:
        cause = errors[0].str() if errors and errors[0] else "no acknowledgement"
        producer.purge()
        producer.flush(0)  # serve the purged delivery reports: no "terminating" warning
        raise ErasureNotPublished(report.user_id, topic, timeout, cause)
