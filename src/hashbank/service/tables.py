"""The service's own tables: API keys, audit log, match log (with review state), webhooks and deliveries.

Created by migration 0002 on top of the store's chain; keep the two in step.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Float, Index, Integer, MetaData, String, Table, Text

BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", String(32), nullable=False, unique=True),
    #: "scrypt$n$r$p$salt_hex$hash_hex" — the key itself is never stored.
    Column("secret_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("banks", JSON),
    Column("name", String(200), nullable=False, default=""),
    Column("rate_limit", Float),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16)),
    Column("action", String(64), nullable=False),
    Column("bank", String(200)),
    Column("target", String(400)),
    Column("status", Integer),
    Column("detail", JSON),
    Index("ix_audit_log_at", "at"),
    sqlite_autoincrement=True,
)

match_log = Table(
    "match_log",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("bank", String(200), nullable=False),
    Column("entry_id", BigInteger, nullable=False),
    Column("category", String(64)),
    Column("signal", String(32), nullable=False),
    Column("value", Text, nullable=False),
    Column("query_signal", String(32)),
    Column("distance", Integer, nullable=False),
    #: open / confirmed / false_positive — the review queue is the open rows.
    Column("review", String(16), nullable=False, default="open"),
    Column("reviewed_by", String(64)),
    Column("reviewed_at", DateTime),
    Column("note", Text),
    Index("ix_match_log_review", "review", "id"),
    Index("ix_match_log_bank_at", "bank", "at"),
    sqlite_autoincrement=True,
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("bank", String(200), nullable=False),
    Column("url", Text, nullable=False),
    #: Random salt; the signing secret is HMAC(instance key, salt), so no secret is stored.
    Column("salt", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Index("ix_webhooks_bank", "bank"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("webhook_id", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("body", Text, nullable=False),
    #: pending / sending / delivered / dead — dead rows are the dead-letter list.
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("last_error", Text),
    Column("delivered_at", DateTime),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sqlite_autoincrement=True,
)
