"""the correlation id and W3C trace context of the request that placed each order

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: adding them rewrites nothing, and older orders simply have none.
    op.add_column("orders", sa.Column("correlation_id", sa.String(100)))
    op.add_column("orders", sa.Column("traceparent", sa.String(55)))


def downgrade() -> None:
    op.drop_column("orders", "traceparent")
    op.drop_column("orders", "correlation_id")
