"""indexes the retention job prunes the inbox and the idempotency keys by

Revision ID: 0004
Revises: 0003
"""

from shopkit.migrations import drop_pruning_indexes, index_for_pruning

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    index_for_pruning()


def downgrade() -> None:
    drop_pruning_indexes()
