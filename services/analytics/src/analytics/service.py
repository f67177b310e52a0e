"""Use cases: the popular-products ranking and bucketed sales statistics."""

from dataclasses import dataclass
from datetime import date
from typing import Literal

from analytics.domain import Figures, Period, buckets
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
    params: list[object] = [start, end, limit]
    if category is not None:
        params.append(category)
    async with db.autocommit() as conn:
        rows = await conn.fetch(POPULAR[metric, category is not None], *params)
    return [
        Ranked(
            rank=i,
            product_id=row["product_id"],
            name=row["name"] or row["product_id"],
            category=row["category"] or row["sold_as"],
            quantity=int(row["quantity"]),
            amount=int(row["amount"]),
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
    filters = [
        (c, v) for c, v in (("product_id", product_id), ("category", category)) if v is not None
    ]
    where = "".join(f" AND {column} = ${i}" for i, (column, _) in enumerate(filters, start=3))
    async with db.autocommit() as conn:
        rows = await conn.fetch(
            f"SELECT day, sum(quantity), sum(amount), sum(orders) FROM {_daily_table(filters)}"
            f" WHERE day BETWEEN $1 AND $2{where} GROUP BY day",
            start,
            end,
            *[value for _, value in filters],
        )
    daily = {day: Figures(int(q), int(a), int(o)) for day, q, a, o in rows}
    return buckets(daily, start=start, end=end, period=period)


def _daily_table(filters: list[tuple[str, str]]) -> str:
    """The smallest table that answers: a product's, a category's or the whole shop's days."""
    columns = {column for column, _ in filters}
    if "product_id" in columns:
        return "product_daily_sales"
    return "category_daily_sales" if "category" in columns else "daily_sales"


def _popular(metric: Metric, *, in_category: bool) -> str:
    return (
        "SELECT top.*, p.name, p.category FROM ("
        " SELECT product_id, sum(quantity) AS quantity, sum(amount) AS amount,"
        " min(category) AS sold_as FROM product_daily_sales"
        " WHERE day BETWEEN $1 AND $2"
        + (" AND category = $4" if in_category else "")
        + " GROUP BY product_id HAVING sum(quantity) > 0"
        f" ORDER BY {metric} DESC, product_id LIMIT $3"
        ") AS top LEFT OUTER JOIN products AS p ON p.product_id = top.product_id"
        f" ORDER BY top.{metric} DESC, top.product_id"
    )


# One fixed text per (metric, filtered by category): each is prepared once per connection.
POPULAR: dict[tuple[Metric, bool], str] = {
    (metric, in_category): _popular(metric, in_category=in_category)
    for metric in ("quantity", "amount")
    for in_category in (False, True)
}
