"""Fast bulk insert: one compiled INSERT ... ON CONFLICT DO NOTHING, run with the driver's executemany.

SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself, so rows
arrive here already in database form (JSON as text, datetimes through the column's processor).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignoring_conflicts(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert dict rows (all with the same keys); rows whose unique key exists are skipped."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        stmt, dialect = postgresql.insert(table), conn.dialect
    else:
        # Named parameters, so pysqlite takes the same dicts psycopg does.
        stmt, dialect = sqlite.insert(table), sqlite.dialect(paramstyle="named")
    sql = str(stmt.on_conflict_do_nothing().compile(dialect=dialect, column_keys=list(rows[0])))
    conn.exec_driver_sql(sql, rows)


def db_value(conn: Connection, table: Table, column: str, value: Any) -> Any:
    """A value as the column's type would send it to this database (e.g. datetime -> text on SQLite)."""
    process = table.c[column].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return process(value) if process else value
