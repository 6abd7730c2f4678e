"""Index entries.disabled_until: the change feed releases expired entries on every read, so finding
them must not scan the table.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_entries_disabled_until", "entries", ["disabled_until"])


def downgrade() -> None:
    op.drop_index("ix_entries_disabled_until", "entries")
