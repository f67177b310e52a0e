"""orders with their saga state, order history, and the kit's outbox/inbox/idempotency tables

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shopkit.migrations import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables()
    op.create_table(
        "orders",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("step", sa.String(30), nullable=False),
        sa.Column("operation", sa.String(10)),
        sa.Column("saga", postgresql.JSONB, nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_orders_user_created", "orders", ["user_id", "created_at", "id"])
    op.create_index(
        "ix_orders_deadline", "orders", ["deadline"], postgresql_where=sa.text("step <> 'DONE'")
    )
    op.create_table(
        "order_history",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("step", sa.String(30), nullable=False),
        sa.Column("event", sa.String(50), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_order_history_order_seq", "order_history", ["order_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_order_history_order_seq", table_name="order_history")
    op.drop_table("order_history")
    op.drop_index("ix_orders_deadline", table_name="orders")
    op.drop_index("ix_orders_user_created", table_name="orders")
    op.drop_table("orders")
    drop_kit_tables()
