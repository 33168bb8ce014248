"""The Postgres side of the log's consumers: the typed connection and the erased-user lookup.

Needs psycopg (the ``[cli]`` extra and every process above it); the SDK never imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from schemas.db import ERASED_USERS_TABLE

Connection = psycopg.Connection[Any]
"""A psycopg connection of any row factory."""

_ANY_ERASED = sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(ERASED_USERS_TABLE))
_ERASED_AMONG = sql.SQL("SELECT user_id FROM {} WHERE user_id = ANY(%s)").format(
    sql.Identifier(ERASED_USERS_TABLE)
)


def erased_among(conn: Connection, users: Iterable[str]) -> set[str]:
    """The users of ``users`` listed in ``erased_users`` (of the connection's search_path).

    Call it holding the shared erasure lock (``schemas.db.ERASURE_LOCK_KEY``) in the
    transaction that writes: then no erasure can commit between the lookup and the write.
    An empty table, the common case, costs one ``EXISTS``; ``users`` is then not even read.
    """
    exists = conn.execute(_ANY_ERASED).fetchone()
    if not exists or not exists[0]:
        return set()
    wanted = list(set(users))
    if not wanted:
        return set()
    return {str(user) for (user,) in conn.execute(_ERASED_AMONG, (wanted,))}


def erased_users(conn: Connection, schema: str | None = None) -> set[str]:
    """Every user in ``erased_users`` (of ``schema``, else of the search_path)."""
    table = sql.Identifier(*(s for s in (schema, ERASED_USERS_TABLE) if s))
    return {str(user) for (user,) in conn.execute(sql.SQL("SELECT user_id FROM {}").format(table))}
