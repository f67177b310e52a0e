"""Catalog tables: categories, products, stock per product, and the saga's stock operations."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shopkit.db import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Category(Base):
    __tablename__ = "categories"

    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)


class Product(Base):
    """What a product is; its quantities live in `stock` so reservations lock a narrow row."""

    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    price: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # One index per sort, alone and behind the category filter, each ending in id: a page is
    # an index range scan that stops after `limit` rows, whatever the page number.
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        Index("ix_products_newest", text("created_at DESC"), "id"),
        Index("ix_products_price_asc", "price", "id"),
        Index("ix_products_price_desc", text("price DESC"), "id"),
        Index("ix_products_name", "name", "id"),
        Index("ix_products_category_newest", "category", text("created_at DESC"), "id"),
        Index("ix_products_category_price_asc", "category", "price", "id"),
        Index("ix_products_category_price_desc", "category", text("price DESC"), "id"),
        Index("ix_products_category_name", "category", "name", "id"),
        # Created by the migration only where the server ships pg_trgm.
        Index(
            "ix_products_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )


class Stock(Base):
    """available + reserved + sold units of one product; `version` counts its changes."""

    __tablename__ = "stock"

    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), primary_key=True)
    available: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("sold >= 0", name="sold_not_negative"),
    )


class Reservation(Base):
    """One Reserve operation of the saga, its lines at reservation-time prices, and its state."""

    __tablename__ = "reservations"

    operation_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(30))
    failed_product_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderSale(Base):
    """Units an order holds as sold, per product: a return can never give back more."""

    __tablename__ = "order_sales"

    order_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    product_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sold: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("sold >= 0", name="sold_not_negative"),)


class StockReturn(Base):
    """One Return operation and what it actually gave back, so a replay changes nothing."""

    __tablename__ = "stock_returns"

    operation_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(100))
    lines: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
