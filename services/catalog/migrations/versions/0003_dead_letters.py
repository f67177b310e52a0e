"""dead letters kept in the service's own database, listable and redrivable by an operator

Revision ID: 0003
Revises: 0002
"""

from shopkit.migrations import create_dead_letters, drop_dead_letters

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_dead_letters()


def downgrade() -> None:
    drop_dead_letters()
