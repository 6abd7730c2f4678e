"""Initial schema: banks, entries, the change log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("taxonomy", sa.String(32), nullable=False),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("thresholds", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "entries",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("bank_id", sa.Integer, sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("source", sa.String(200)),
        sa.Column("external_id", sa.String(200)),
        sa.Column("content_id", sa.String(200)),
        sa.Column("tags", sa.JSON),
        sa.Column("note", sa.Text),
        sa.Column("added_at", sa.DateTime, nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_until", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
        sa.UniqueConstraint("bank_id", "signal", "value", name="uq_entries_bank_signal_value"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_entries_bank_content", "entries", ["bank_id", "content_id"])
    op.create_table(
        "changes",
        sa.Column("seq", BigId, primary_key=True),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("entry_id", sa.BigInteger, nullable=False),
        sa.Column("bank_id", sa.Integer, nullable=False),
        sa.Column("bank_name", sa.String(200), nullable=False),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("source", sa.String(200)),
        sa.Column("external_id", sa.String(200)),
        sa.Column("content_id", sa.String(200)),
        sa.Column("tags", sa.JSON),
        sa.Column("note", sa.Text),
        sa.Column("added_at", sa.DateTime),
        sa.Column("added_by", sa.String(200)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_until", sa.DateTime),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_changes_bank_seq", "changes", ["bank_id", "seq"])
    op.create_index("ix_changes_entry", "changes", ["entry_id"])


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_table("entries")
    op.drop_table("banks")
