"""Index entries.disabled_until: the change feed releases expired entries on every read, so finding
them must not scan the table.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Partial: most entries have none, and a bulk import should not pay for indexing their NULLs.
    due = sa.text("disabled_until IS NOT NULL")
    op.create_index("ix_entries_disabled_until", "entries", ["disabled_until"], sqlite_where=due, postgresql_where=due)


def downgrade() -> None:
    op.drop_index("ix_entries_disabled_until", "entries")
