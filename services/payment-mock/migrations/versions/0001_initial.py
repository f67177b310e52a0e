"""payments, the provider behavior row, and the kit's outbox/inbox/idempotency tables

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from shopkit.migrations import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The app's outbox relay polls the outbox table even though this service publishes nothing.
    create_kit_tables()
    op.create_table(
        "payments",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("order_id", sa.String(100), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("amount > 0", name="ck_payments_amount_positive"),
    )
    op.create_index("ix_payments_order_id_seq", "payments", ["order_id", "seq"])
    op.create_table(
        "provider_behavior",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("decline_rate", sa.Float, nullable=False),
        sa.Column("timeout_rate", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id = 1", name="ck_provider_behavior_single_row"),
    )
    op.execute(
        "INSERT INTO provider_behavior (id, decline_rate, timeout_rate, latency_ms)"
        " VALUES (1, 0, 0, 0)"
    )


def downgrade() -> None:
    op.drop_table("provider_behavior")
    op.drop_index("ix_payments_order_id_seq", table_name="payments")
    op.drop_table("payments")
    drop_kit_tables()
