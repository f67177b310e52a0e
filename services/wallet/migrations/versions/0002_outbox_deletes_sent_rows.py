"""the outbox relay deletes the rows it sent instead of marking them published

Revision ID: 0002
Revises: 0001
"""

from shopkit.migrations import outbox_deletes_sent_rows, outbox_marks_sent_rows

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    outbox_deletes_sent_rows()


def downgrade() -> None:
    outbox_marks_sent_rows()
