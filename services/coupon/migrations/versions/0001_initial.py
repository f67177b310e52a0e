"""coupons, coupon lines, user coupons, known users, saga operations, and the kit's tables

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
    create_kit_tables()
    op.create_table(
        "coupons",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("discount_type", sa.String(10), nullable=False),
        sa.Column("discount_value", sa.BigInteger, nullable=False),
        sa.Column("total_quantity", sa.Integer, nullable=False),
        sa.Column("issued_quantity", sa.Integer, nullable=False),
        sa.Column("min_order_amount", sa.BigInteger, nullable=False),
        sa.Column("valid_days", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("issued_quantity <= total_quantity", name="ck_coupons_not_over_issued"),
        sa.CheckConstraint("issued_quantity >= 0", name="ck_coupons_issued_not_negative"),
    )
    op.create_table(
        "coupon_lines",
        sa.Column("coupon_id", sa.String(36), sa.ForeignKey("coupons.id"), primary_key=True),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.CheckConstraint("accepted <= capacity", name="ck_coupon_lines_not_over_accepted"),
    )
    op.create_table(
        "user_coupons",
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("coupon_id", sa.String(36), sa.ForeignKey("coupons.id"), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("position", sa.Integer),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.Column("order_id", sa.String(36)),
        sa.UniqueConstraint("coupon_id", "user_id", name="uq_user_coupons_one_per_user"),
    )
    op.create_index("ix_user_coupons_user_seq", "user_coupons", ["user_id", "seq"])
    op.create_table(
        "known_users",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "coupon_operations",
        sa.Column("operation_id", sa.String(100), primary_key=True),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("user_coupon_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("discount_type", sa.String(10)),
        sa.Column("discount_value", sa.BigInteger, nullable=False),
        sa.Column("min_order_amount", sa.BigInteger, nullable=False),
        sa.Column("discount", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.String(200)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index(
        "ix_coupon_operations_order", "coupon_operations", ["order_id", "user_coupon_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_coupon_operations_order", table_name="coupon_operations")
    op.drop_table("coupon_operations")
    op.drop_table("known_users")
    op.drop_index("ix_user_coupons_user_seq", table_name="user_coupons")
    op.drop_table("user_coupons")
    op.drop_table("coupon_lines")
    op.drop_table("coupons")
    drop_kit_tables()
