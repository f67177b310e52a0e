"""Pure sales rules: what an order event adds to or takes from the daily sums, and calendars.

A sale belongs to the shop-local calendar date of the order's `paid_at`, under the category the
line carried when it was sold. Every figure is a sum, so events of different orders commute;
events of one order arrive in order (same Kafka key), which is what makes a replay identical.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from contracts.order import SoldLine

Period = Literal["day", "week", "month"]

MAX_DAY_RANGE = 366
MAX_LONG_RANGE = 5 * 366


@dataclass(frozen=True)
class Sale:
    """One order line as it counts: quantity and amount = quantity * unit_price."""

    product_id: str
    category: str
    quantity: int
    amount: int


@dataclass
class Figures:
    quantity: int = 0
    amount: int = 0
    orders: int = 0

    def add(self, quantity: int, amount: int, orders: int) -> None:
        self.quantity += quantity
        self.amount += amount
        self.orders += orders

    def is_zero(self) -> bool:
        return self.quantity == 0 and self.amount == 0 and self.orders == 0


@dataclass
class RecordedOrder:
    """What an order currently counts for: the day it was paid, its status and its sales."""

    day: date
    status: Literal["PAID", "CANCELLED"]
    sales: tuple[Sale, ...]


@dataclass
class Deltas:
    """Changes to the daily sums, per product, per category and for the whole shop."""

    by_product: dict[tuple[str, date, str], Figures] = field(default_factory=dict)
    by_category: dict[tuple[str, date], Figures] = field(default_factory=dict)
    by_day: dict[date, Figures] = field(default_factory=dict)

    def count(self, day: date, sales: Iterable[Sale], sign: int) -> None:
        """Add (sign=1) or take back (sign=-1) one order's sales on `day`."""
        products: set[tuple[str, date, str]] = set()
        categories: set[tuple[str, date]] = set()
        any_sale = False
        for sale in sales:
            q, a = sign * sale.quantity, sign * sale.amount
            pkey, ckey = (sale.product_id, day, sale.category), (sale.category, day)
            # An order counts once per product, per category and per day, however many lines.
            self.by_product.setdefault(pkey, Figures()).add(q, a, 0 if pkey in products else sign)
            self.by_category.setdefault(ckey, Figures()).add(
                q, a, 0 if ckey in categories else sign
            )
            self.by_day.setdefault(day, Figures()).add(q, a, 0 if any_sale else sign)
            products.add(pkey)
            categories.add(ckey)
            any_sale = True


def sales_of(lines: Iterable[SoldLine]) -> tuple[Sale, ...]:
    return tuple(
        Sale(line.product_id, line.category, line.quantity, line.quantity * line.unit_price)
        for line in lines
    )


def local_day(moment: datetime, timezone: str) -> date:
    """The shop-local calendar date of an instant (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(timezone)).date()


@dataclass
class Projection:
    """Applies order events to the orders it has loaded, collecting the deltas to write."""

    orders: dict[str, RecordedOrder | None]
    deltas: Deltas = field(default_factory=Deltas)
    changed: set[str] = field(default_factory=set)

    def paid(self, order_id: str, *, day: date, sales: tuple[Sale, ...]) -> None:
        """A paid order counts once; a repeated paid event for a known order changes nothing."""
        if self.orders.get(order_id) is not None:
            return
        self.orders[order_id] = RecordedOrder(day=day, status="PAID", sales=sales)
        self.deltas.count(day, sales, 1)
        self.changed.add(order_id)

    def cancelled(self, order_id: str) -> None:
        """Take back exactly what the order counted for, on the day it was paid."""
        order = self.orders.get(order_id)
        if order is None or order.status != "PAID":
            return
        self.deltas.count(order.day, order.sales, -1)
        order.status = "CANCELLED"
        self.changed.add(order_id)

    def modified(self, order_id: str, *, day: date, sales: tuple[Sale, ...]) -> None:
        """Replace what the order counted for; an order never seen paid counts from now on."""
        order = self.orders.get(order_id)
        if order is None:
            self.paid(order_id, day=day, sales=sales)
            return
        if order.status != "PAID":
            return
        self.deltas.count(order.day, order.sales, -1)
        self.deltas.count(order.day, sales, 1)
        order.sales = sales
        self.changed.add(order_id)


def window(today: date, days: int) -> tuple[date, date]:
    """The last `days` calendar days including today."""
    return today - timedelta(days=days - 1), today


def period_start(day: date, period: Period) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    if period == "month":
        return day.replace(day=1)
    return day


def next_period(start: date, period: Period) -> date:
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def default_from(to: date, period: Period) -> date:
    """Without `from`: the last 30 days, 12 weeks or 12 months up to `to`."""
    if period == "week":
        return period_start(to, "week") - timedelta(weeks=11)
    if period == "month":
        start = to.replace(day=1)
        for _ in range(11):
            start = (start - timedelta(days=1)).replace(day=1)
        return start
    return to - timedelta(days=29)


def range_problem(start: date, end: date, period: Period) -> str | None:
    """Why a statistics range is refused, or None when it is fine."""
    if start > end:
        return "from must not be after to"
    limit = MAX_DAY_RANGE if period == "day" else MAX_LONG_RANGE
    if (end - start).days + 1 > limit:
        return f"a {period} range spans at most {limit} days"
    return None


def buckets(
    daily: dict[date, Figures], *, start: date, end: date, period: Period
) -> list[tuple[date, Figures]]:
    """Every bucket from the one holding `start` to the one holding `end`, empty ones as zeros.

    Only days between `start` and `end` count, so a week cut by the range holds part of a week.
    """
    out: list[tuple[date, Figures]] = []
    by_start: dict[date, Figures] = {}
    bucket = period_start(start, period)
    while bucket <= end:
        by_start[bucket] = Figures()
        out.append((bucket, by_start[bucket]))
        bucket = next_period(bucket, period)
    for day, figures in daily.items():
        if start <= day <= end:
            by_start[period_start(day, period)].add(
                figures.quantity, figures.amount, figures.orders
            )
    return out
