"""Shadow copies of the aggregate tables, built aside and swapped in by one transaction.

``<schema>_rebuild`` holds empty copies (``LIKE … INCLUDING ALL``) of the aggregate tables;
a connection whose ``search_path`` is that schema writes into them with the workers' own SQL.
``swap`` then, in the caller's transaction, drops each live table and moves its copy in,
keeping the live tables' index names and grants. Readers block on the swap's locks for its
duration and then see the new tables: never a half-built state.
"""

from __future__ import annotations

from typing import Final

from psycopg import sql

from eventlog.db import Connection
from schemas.db import TYPE_BUCKETS_TABLE, USER_DAYS_TABLE

TABLES: Final = (TYPE_BUCKETS_TABLE, USER_DAYS_TABLE)
_PRIVILEGES: Final = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}
)
_INDEXES = """
SELECT i.relname, x.indkey::text
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s::regclass AND NOT x.indisprimary
"""
_GRANTS = """
SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.oid = %s::regclass AND a.grantee <> c.relowner
"""


def shadow_schema(live: str) -> str:
    return f"{live}_rebuild"


def create(conn: Connection, live: str) -> str:
    """(Re)create the shadow schema with empty copies of the aggregate tables; committed."""
    shadow = shadow_schema(live)
    with conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(shadow)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(shadow)))
        for table in TABLES:
            conn.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                    sql.Identifier(shadow, table), sql.Identifier(live, table)
                )
            )
    return shadow


def drop(conn: Connection, live: str) -> None:
    with conn.transaction():
        name = sql.Identifier(shadow_schema(live))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))


def swap(conn: Connection, live: str) -> None:
    """Replace the live aggregate tables by the shadow ones (call inside a transaction)."""
    shadow = shadow_schema(live)
    for table in TABLES:
        old, new = sql.Identifier(live, table), sql.Identifier(shadow, table)
        names = _index_names(conn, old)
        grants = conn.execute(_GRANTS, (_regclass(live, table),)).fetchall()
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(old))
        conn.execute(sql.SQL("DROP TABLE {}").format(old))
        conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(new, sql.Identifier(live)))
        _rename_indexes(conn, live, old, names)
        for privilege, grantee in grants:
            _grant(conn, old, privilege, grantee)
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(shadow)))


def _regclass(schema: str, table: str) -> str:
    return sql.Identifier(schema, table).as_string(None)


def _index_names(conn: Connection, table: sql.Identifier) -> dict[str, str]:
    """Secondary index name by its column list (the copies get generated names)."""
    rows = conn.execute(_INDEXES, (table.as_string(None),)).fetchall()
    return {columns: name for name, columns in rows}


def _rename_indexes(
    conn: Connection, schema: str, table: sql.Identifier, wanted: dict[str, str]
) -> None:
    for name, columns in conn.execute(_INDEXES, (table.as_string(None),)).fetchall():
        target = wanted.get(columns)
        if target is not None and target != name:
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(schema, name), sql.Identifier(target)
                )
            )


def _grant(conn: Connection, table: sql.Identifier, privilege: str, grantee: str | None) -> None:
    if privilege not in _PRIVILEGES:
        raise ValueError(f"unexpected privilege {privilege!r} in the catalog")
    to = sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)
    conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), table, to))
