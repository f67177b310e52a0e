"""Use cases: the popular-products ranking and bucketed sales statistics."""

from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import func, select

from analytics.domain import Figures, Period, buckets
from analytics.models import CategoryDailySales, DailySales, Product, ProductDailySales
from shopkit.db import Database

Metric = Literal["quantity", "amount"]


@dataclass(frozen=True)
class Ranked:
    rank: int
    product_id: str
    name: str
    category: str
    quantity: int
    amount: int


async def popular_products(
    db: Database, *, start: date, end: date, limit: int, metric: Metric, category: str | None
) -> list[Ranked]:
    """Products with the most sales between `start` and `end`, best first, ties by product id."""
    s = ProductDailySales
    quantity, amount = func.sum(s.quantity).label("quantity"), func.sum(s.amount).label("amount")
    ranked = (
        select(s.product_id, quantity, amount, func.min(s.category).label("sold_as"))
        .where(s.day.between(start, end))
        .group_by(s.product_id)
        .having(func.sum(s.quantity) > 0)
        .order_by((quantity if metric == "quantity" else amount).desc(), s.product_id)
        .limit(limit)
    )
    if category is not None:
        ranked = ranked.where(s.category == category)
    top = ranked.subquery()
    query = (
        select(top, Product.name, Product.category)
        .outerjoin(Product, Product.product_id == top.c.product_id)
        .order_by(getattr(top.c, metric).desc(), top.c.product_id)
    )
    async with db.sessions() as session:
        rows = (await session.execute(query)).all()
    return [
        Ranked(
            rank=i,
            product_id=row.product_id,
            name=row.name or row.product_id,
            category=row.category or row.sold_as,
            quantity=int(row.quantity),
            amount=int(row.amount),
        )
        for i, row in enumerate(rows, start=1)
    ]


async def sales_statistics(
    db: Database,
    *,
    start: date,
    end: date,
    period: Period,
    category: str | None,
    product_id: str | None,
) -> list[tuple[date, Figures]]:
    """Sales per day, week or month between `start` and `end` inclusive, every bucket present."""
    table: type[DailySales | CategoryDailySales | ProductDailySales]
    if product_id is not None:
        table = ProductDailySales
    elif category is not None:
        table = CategoryDailySales
    else:
        table = DailySales
    query = (
        select(
            table.day,
            func.sum(table.quantity),
            func.sum(table.amount),
            func.sum(table.orders),
        )
        .where(table.day.between(start, end))
        .group_by(table.day)
    )
    if product_id is not None:
        query = query.where(ProductDailySales.product_id == product_id)
    if category is not None:
        query = query.where(table.category == category)  # type: ignore[union-attr]
    async with db.sessions() as session:
        rows = (await session.execute(query)).all()
    daily = {day: Figures(int(q), int(a), int(o)) for day, q, a, o in rows}
    return buckets(daily, start=start, end=end, period=period)
