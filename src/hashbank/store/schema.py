"""Tables of the store (SQLAlchemy Core: bulk imports never build ORM objects).

Migrations in ``migrations/versions`` create exactly these; keep the two in step.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

#: A 64-bit key that is still SQLite's rowid (so it autoincrements there).
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

banks = Table(
    "banks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("taxonomy", String(32), nullable=False, default="vics"),
    Column("categories", JSON, nullable=False, default=dict),
    Column("thresholds", JSON, nullable=False, default=dict),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
    sqlite_autoincrement=True,
)

entries = Table(
    "entries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("bank_id", Integer, ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
    Column("signal", String(32), nullable=False),
    Column("value", Text, nullable=False),
    Column("category", String(64)),
    Column("source", String(200)),
    Column("external_id", String(200)),
    Column("content_id", String(200)),
    Column("tags", JSON(none_as_null=True)),
    Column("note", Text),
    Column("added_at", DateTime, nullable=False),
    Column("added_by", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("disabled_until", DateTime),
    Column("updated_at", DateTime),
    UniqueConstraint("bank_id", "signal", "value", name="uq_entries_bank_signal_value"),
    Index("ix_entries_bank_content", "bank_id", "content_id"),
    Index(
        "ix_entries_disabled_until",
        "disabled_until",
        sqlite_where=text("disabled_until IS NOT NULL"),
        postgresql_where=text("disabled_until IS NOT NULL"),
    ),
    sqlite_autoincrement=True,
)

#: The change log: one row per add/update/delete, carrying the entry as it then was
#: (deletes are tombstones), so replaying it from 0 rebuilds every bank.
changes = Table(
    "changes",
    metadata,
    Column("seq", BigId, primary_key=True),
    Column("op", String(8), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("entry_id", BigInteger, nullable=False),
    Column("bank_id", Integer, nullable=False),
    Column("bank_name", String(200), nullable=False),
    Column("signal", String(32), nullable=False),
    Column("value", Text, nullable=False),
    Column("category", String(64)),
    Column("source", String(200)),
    Column("external_id", String(200)),
    Column("content_id", String(200)),
    Column("tags", JSON(none_as_null=True)),
    Column("note", Text),
    Column("added_at", DateTime),
    Column("added_by", String(200)),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_until", DateTime),
    Index("ix_changes_bank_seq", "bank_id", "seq"),
    Index("ix_changes_entry", "entry_id"),
    sqlite_autoincrement=True,
)
