"""categories (seeded), products, stock, saga stock operations, and the kit's tables

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

# A copy, not an import: a migration must keep meaning what it meant when it was written.
CATEGORIES = (
    ("ELECTRONICS", "전자제품"),
    ("FASHION", "패션"),
    ("FOOD", "식품"),
    ("BOOKS", "도서"),
    ("HOME", "홈/리빙"),
    ("SPORTS", "스포츠"),
    ("BEAUTY", "뷰티"),
    ("TOYS", "완구"),
)

PRODUCT_INDEXES = {
    "ix_products_newest": ["created_at DESC", "id"],
    "ix_products_price_asc": ["price", "id"],
    "ix_products_price_desc": ["price DESC", "id"],
    "ix_products_name": ["name", "id"],
    "ix_products_category_newest": ["category", "created_at DESC", "id"],
    "ix_products_category_price_asc": ["category", "price", "id"],
    "ix_products_category_price_desc": ["category", "price DESC", "id"],
    "ix_products_category_name": ["category", "name", "id"],
}


def upgrade() -> None:
    create_kit_tables()
    categories = op.create_table(
        "categories",
        sa.Column("code", sa.String(30), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.bulk_insert(
        categories,
        [{"code": c, "name": n, "position": i} for i, (c, n) in enumerate(CATEGORIES)],
    )
    op.create_table(
        "products",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(30), sa.ForeignKey("categories.code"), nullable=False),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("price >= 0", name="ck_products_price_not_negative"),
    )
    for name, columns in PRODUCT_INDEXES.items():
        op.create_index(name, "products", [sa.text(c) for c in columns])
    # Name search (ILIKE '%q%') uses a trigram index where the server ships pg_trgm (contrib);
    # without it the search still works, as a scan.
    op.execute(
        """
        DO $$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
            CREATE INDEX ix_products_name_trgm ON products USING gin (name gin_trgm_ops);
          END IF;
        END $$;
        """
    )
    op.create_table(
        "stock",
        sa.Column("product_id", sa.String(36), sa.ForeignKey("products.id"), primary_key=True),
        sa.Column("available", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False),
        sa.Column("sold", sa.Integer, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.CheckConstraint("available >= 0", name="ck_stock_available_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_reserved_not_negative"),
        sa.CheckConstraint("sold >= 0", name="ck_stock_sold_not_negative"),
    )
    op.create_table(
        "reservations",
        sa.Column("operation_id", sa.String(100), primary_key=True),
        sa.Column("order_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(30)),
        sa.Column("failed_product_ids", postgresql.JSONB, nullable=False),
        sa.Column("lines", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reservations_order_id", "reservations", ["order_id"])
    op.create_table(
        "order_sales",
        sa.Column("order_id", sa.String(100), primary_key=True),
        sa.Column("product_id", sa.String(36), primary_key=True),
        sa.Column("sold", sa.Integer, nullable=False),
        sa.CheckConstraint("sold >= 0", name="ck_order_sales_sold_not_negative"),
    )
    op.create_table(
        "stock_returns",
        sa.Column("operation_id", sa.String(100), primary_key=True),
        sa.Column("order_id", sa.String(100), nullable=False),
        sa.Column("lines", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stock_returns")
    op.drop_table("order_sales")
    op.drop_index("ix_reservations_order_id", table_name="reservations")
    op.drop_table("reservations")
    op.drop_table("stock")
    op.execute("DROP INDEX IF EXISTS ix_products_name_trgm")
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
    for name in reversed(PRODUCT_INDEXES):
        op.drop_index(name, table_name="products")
    op.drop_table("products")
    op.drop_table("categories")
    drop_kit_tables()
