"""coupon operations keep only the discount: the coupon's terms stay with the coupon

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
    for column in ("discount_type", "discount_value", "min_order_amount"):
        op.drop_column("coupon_operations", column)


def downgrade() -> None:
    op.add_column("coupon_operations", sa.Column("discount_type", sa.String(10)))
    for column in ("discount_value", "min_order_amount"):
        op.add_column(
            "coupon_operations",
            sa.Column(column, sa.BigInteger, nullable=False, server_default="0"),
        )
