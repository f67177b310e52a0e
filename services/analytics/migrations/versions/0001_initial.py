"""products, recorded sale orders, daily sales per product / category / shop, and kit tables

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


def _figures() -> list[sa.Column]:
    return [
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("orders", sa.Integer, nullable=False),
    ]


def upgrade() -> None:
    create_kit_tables()
    op.create_table(
        "products",
        sa.Column("product_id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "sale_orders",
        sa.Column("order_id", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("lines", postgresql.JSONB, nullable=False),
    )
    op.create_table(
        "product_daily_sales",
        sa.Column("product_id", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("category", sa.String(100), primary_key=True),
        *_figures(),
    )
    op.create_index(
        "ix_product_daily_sales_day_category", "product_daily_sales", ["day", "category"]
    )
    op.create_table(
        "category_daily_sales",
        sa.Column("category", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        *_figures(),
    )
    op.create_table("daily_sales", sa.Column("day", sa.Date, primary_key=True), *_figures())


def downgrade() -> None:
    op.drop_table("daily_sales")
    op.drop_table("category_daily_sales")
    op.drop_index("ix_product_daily_sales_day_category", table_name="product_daily_sales")
    op.drop_table("product_daily_sales")
    op.drop_table("sale_orders")
    op.drop_table("products")
    drop_kit_tables()
