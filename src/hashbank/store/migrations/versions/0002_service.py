"""Service tables: API keys, audit log, match log with review state, webhooks and their deliveries.

Owned by hashbank.service (mirrors hashbank/service/tables.py).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("banks", sa.JSON),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rate_limit", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(200)),
        sa.Column("target", sa.String(400)),
        sa.Column("status", sa.Integer),
        sa.Column("detail", sa.JSON),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "match_log",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(200), nullable=False),
        sa.Column("entry_id", sa.BigInteger, nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("query_signal", sa.String(32)),
        sa.Column("distance", sa.Integer, nullable=False),
        sa.Column("review", sa.String(16), nullable=False),
        sa.Column("reviewed_by", sa.String(64)),
        sa.Column("reviewed_at", sa.DateTime),
        sa.Column("note", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_match_log_review", "match_log", ["review", "id"])
    op.create_index("ix_match_log_bank_at", "match_log", ["bank", "at"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("bank", sa.String(200), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_webhooks_bank", "webhooks", ["bank"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("webhook_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_at", sa.DateTime),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    for table in ("webhook_deliveries", "webhooks", "match_log", "audit_log", "api_keys"):
        op.drop_table(table)
