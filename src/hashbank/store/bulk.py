"""Fast bulk insert: one INSERT ... ON CONFLICT DO NOTHING, run with the driver's executemany.

SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself, so rows
arrive here already in database form (JSON as text, datetimes through the column's processor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table


def insert_ignoring_conflicts(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert rows (tuples in ``columns`` order); rows whose unique key exists are skipped.

    Positional parameters: the drivers bind a tuple faster than a dict of the same values."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy_then_insert(conn, table, columns, rows)
        return
    quote = conn.dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['?'] * len(columns))}) ON CONFLICT DO NOTHING"  # sqlite3's positional marker
    )
    conn.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows))


def _copy_then_insert(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """PostgreSQL: COPY the rows into a temporary table (numbered, to keep their order), then one
    INSERT ... SELECT ... ON CONFLICT DO NOTHING: about twice as fast as executemany of the same rows."""
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    staging = f"hashbank_new_{table.name}"
    types = ", ".join(f"{quote(c)} {table.c[c].type.compile(conn.dialect)}" for c in columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (ord integer, {types}) ON COMMIT DELETE ROWS")
        with cursor.copy(f"COPY {staging} (ord, {names}) FROM STDIN") as copy:
            for number, row in enumerate(rows):
                copy.write_row((number, *row))
        select = f"SELECT {names} FROM {staging} ORDER BY ord"  # ids are handed out in file order
        cursor.execute(f"INSERT INTO {quote(table.name)} ({names}) {select} ON CONFLICT DO NOTHING")
        cursor.execute(f"TRUNCATE {staging}")  # a second batch in the same transaction starts empty
    finally:
        cursor.close()


def db_value(conn: Connection, table: Table, column: str, value: Any) -> Any:
    """A value as the column's type would send it to this database (e.g. datetime -> text on SQLite)."""
    process = table.c[column].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return process(value) if process else value
