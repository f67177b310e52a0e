"""Analytics tables: what each paid order counted, and the per-day sums the queries read."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shopkit.db import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Product(Base):
    """Names and categories for the answers; the catalog's word beats an order line's."""

    __tablename__ = "products"

    product_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(100))
    price: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(10))  # catalog | order
    seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SaleOrder(Base):
    """The lines a paid order currently counts for, so a cancel or modify undoes exactly them."""

    __tablename__ = "sale_orders"

    order_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10))  # PAID | CANCELLED
    lines: Mapped[list[Any]] = mapped_column(JSONB)


class ProductDailySales(Base):
    """Sales of one product on one shop-local day, under the category it was sold in."""

    __tablename__ = "product_daily_sales"

    product_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    orders: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_product_daily_sales_day_category", "day", "category"),)


class CategoryDailySales(Base):
    """Sales of one category on one day; `orders` counts an order once per category."""

    __tablename__ = "category_daily_sales"

    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    orders: Mapped[int] = mapped_column(Integer)


class DailySales(Base):
    """The whole shop's sales on one day."""

    __tablename__ = "daily_sales"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    orders: Mapped[int] = mapped_column(Integer)
