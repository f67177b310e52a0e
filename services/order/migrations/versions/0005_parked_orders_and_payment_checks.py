"""parked sagas (orders.parked_at, last_error) and the late-payment checks of timed-out orders

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("parked_at", sa.DateTime(timezone=True)))
    op.add_column("orders", sa.Column("last_error", sa.Text))
    op.create_index(
        "ix_orders_parked",
        "orders",
        ["parked_at", "id"],
        postgresql_where=sa.text("parked_at IS NOT NULL"),
    )
    op.create_table(
        "payment_checks",
        sa.Column("order_id", sa.String(36), primary_key=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.Integer, nullable=False),
    )
    op.create_index("ix_payment_checks_due", "payment_checks", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_payment_checks_due", table_name="payment_checks")
    op.drop_table("payment_checks")
    op.drop_index("ix_orders_parked", table_name="orders")
    op.drop_column("orders", "last_error")
    op.drop_column("orders", "parked_at")
