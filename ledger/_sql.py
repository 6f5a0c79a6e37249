"""Hot-path SQL for the log: point lookups and bulk inserts.

SQLAlchemy Core builds and caches the statements here; they stay plain SQL
(``UNION ALL`` of primary-key lookups, ``IN`` lists, multi-row inserts at
the driver) so SQLite and PostgreSQL run them alike. A ``(level, idx) IN``
row-value list looked simpler but makes SQLite scan the whole log.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["bulk_insert", "existing_keys_qmark", "existing_keys_sql", "node_lookup_sql"]


@functools.lru_cache(maxsize=256)
def node_lookup_sql(count: int) -> sa.TextClause:
    """``count`` primary-key lookups of ``ledger_node`` in one statement."""
    parts = [
        f"SELECT level, idx, hash FROM ledger_node "
        f"WHERE log_id = :log_id AND level = :l{n} AND idx = :i{n}"
        for n in range(count)
    ]
    return sa.text(" UNION ALL ".join(parts))


@functools.lru_cache(maxsize=64)
def existing_keys_sql(count: int) -> sa.TextClause:
    """Look up ``count`` idempotency keys in all logs.

    The caller filters on ``log_id``: with it in the WHERE clause SQLite
    prefers the primary key and scans the whole log.
    """
    names = ", ".join(f":k{n}" for n in range(count))
    return sa.text(
        f"SELECT log_id, entry_key, idx FROM ledger_entry WHERE entry_key IN ({names})"
    )


@functools.lru_cache(maxsize=64)
def existing_keys_qmark(count: int) -> str:
    """`existing_keys_sql` for drivers with ``?`` placeholders (SQLite)."""
    marks = ", ".join("?" * count)
    return (
        f"SELECT log_id, entry_key, idx FROM ledger_entry WHERE entry_key IN ({marks})"
    )


_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def bulk_insert(
    conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows through the driver's ``executemany``.

    Skips SQLAlchemy's per-row parameter processing, which costs more than
    SQLite's insert itself; drivers with another parameter style take the
    ordinary Core path.
    """
    if not rows:
        return
    mark = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    if mark is None:
        statement = sa.table(table, *(sa.column(c) for c in columns)).insert()
        conn.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    conn.exec_driver_sql(sql, rows)
