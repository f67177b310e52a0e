"""Applying a batch of order and catalog events to the analytics tables in one transaction.

The live consumer and the rebuild both call `project`, so a rebuild gives the same rows.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, column, delete, select, table, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.consumer import Delivery
from analytics.domain import Deltas, Figures, Projection, RecordedOrder, Sale, local_day, sales_of
from analytics.models import CategoryDailySales, DailySales, Product, ProductDailySales, SaleOrder
from contracts import Message
from contracts.catalog import ProductChanged, ProductCreated
from contracts.order import OrderCancelled, OrderModified, OrderPaid, SoldLine

CONSUMER = "analytics-projection"
HANDLED: tuple[type[Message], ...] = (
    OrderPaid,
    OrderCancelled,
    OrderModified,
    ProductCreated,
    ProductChanged,
)
OrderEvent = OrderPaid | OrderCancelled | OrderModified
# The kit's inbox table, named here so that batches can record many message ids at once.
INBOX = table(
    "inbox", column("consumer"), column("message_id", Uuid), column("type"), column("outcome")
)
# asyncpg allows 32,767 parameters per statement.
ROWS_PER_STATEMENT = 2_000


async def project(session: AsyncSession, deliveries: Sequence[Delivery], *, timezone: str) -> int:
    """Apply the deliveries not seen before, in order; the number applied."""
    fresh = await _first_deliveries(session, deliveries)
    order_ids = {d.message.order_id for d in fresh if isinstance(d.message, OrderEvent)}
    projection = Projection(orders=await _load_orders(session, order_ids))
    catalog: dict[str, dict[str, Any]] = {}
    from_orders: dict[str, dict[str, Any]] = {}
    for delivery in fresh:
        message = delivery.message
        if isinstance(message, OrderPaid):
            day = local_day(message.paid_at, timezone)
            projection.paid(message.order_id, day=day, sales=sales_of(message.lines))
            _learn(from_orders, message.lines, seen_at=message.paid_at)
        elif isinstance(message, OrderCancelled):
            projection.cancelled(message.order_id)
        elif isinstance(message, OrderModified):
            day = local_day(message.paid_at, timezone)
            projection.modified(message.order_id, day=day, sales=sales_of(message.lines))
            _learn(from_orders, message.lines, seen_at=message.modified_at)
        elif isinstance(message, ProductCreated | ProductChanged):
            catalog[message.product_id] = {
                "product_id": message.product_id,
                "name": message.name,
                "category": message.category,
                "price": message.price,
                "source": "catalog",
                "seen_at": getattr(message, "created_at", None),
            }
    await _write_orders(session, projection)
    await _write_deltas(session, projection.deltas)
    await _write_products(session, from_orders=from_orders, catalog=catalog)
    return len(fresh)


async def _first_deliveries(
    session: AsyncSession, deliveries: Sequence[Delivery]
) -> list[Delivery]:
    """Record every message id in the inbox at once; keep the first delivery of each new one."""
    unique: dict[uuid.UUID, Delivery] = {}
    for delivery in deliveries:
        unique.setdefault(delivery.envelope.message_id, delivery)
    if not unique:
        return []
    rows = [
        {"consumer": CONSUMER, "message_id": mid, "type": d.envelope.type, "outcome": "processed"}
        for mid, d in unique.items()
    ]
    new: set[uuid.UUID] = set()
    for chunk in _chunks(rows):
        result = await session.execute(
            insert(INBOX).values(chunk).on_conflict_do_nothing().returning(INBOX.c.message_id)
        )
        new.update(result.scalars())
    return [d for mid, d in unique.items() if mid in new]


async def _load_orders(
    session: AsyncSession, order_ids: set[str]
) -> dict[str, RecordedOrder | None]:
    orders: dict[str, RecordedOrder | None] = dict.fromkeys(order_ids)
    if not order_ids:
        return orders
    rows = await session.execute(select(SaleOrder).where(SaleOrder.order_id.in_(order_ids)))
    for row in rows.scalars():
        sales = tuple(Sale(*line) for line in row.lines)
        orders[row.order_id] = RecordedOrder(day=row.day, status=row.status, sales=sales)  # type: ignore[arg-type]
    return orders


async def _write_orders(session: AsyncSession, projection: Projection) -> None:
    rows = []
    for order_id in sorted(projection.changed):
        order = projection.orders[order_id]
        assert order is not None
        lines = [[s.product_id, s.category, s.quantity, s.amount] for s in order.sales]
        rows.append(
            {"order_id": order_id, "day": order.day, "status": order.status, "lines": lines}
        )
    for chunk in _chunks(rows):
        stmt = insert(SaleOrder).values(chunk)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[SaleOrder.order_id],
                set_={"status": stmt.excluded.status, "lines": stmt.excluded.lines},
            )
        )


async def _write_deltas(session: AsyncSession, deltas: Deltas) -> None:
    # Sorted keys: concurrent replicas lock shared rows (today's totals) in the same order.
    await _add_figures(
        session,
        ProductDailySales,
        ["product_id", "day", "category"],
        [
            (dict(zip(("product_id", "day", "category"), k, strict=True)), f)
            for k, f in sorted(deltas.by_product.items())
        ],
    )
    await _add_figures(
        session,
        CategoryDailySales,
        ["category", "day"],
        [({"category": k[0], "day": k[1]}, f) for k, f in sorted(deltas.by_category.items())],
    )
    await _add_figures(
        session, DailySales, ["day"], [({"day": k}, f) for k, f in sorted(deltas.by_day.items())]
    )


async def _add_figures(
    session: AsyncSession,
    table: type[ProductDailySales | CategoryDailySales | DailySales],
    keys: list[str],
    changes: list[tuple[dict[str, Any], Figures]],
) -> None:
    rows = [
        {**key, "quantity": f.quantity, "amount": f.amount, "orders": f.orders}
        for key, f in changes
        if not f.is_zero()
    ]
    columns = table.__table__.c  # type: ignore[union-attr]
    for chunk in _chunks(rows):
        stmt = insert(table).values(chunk)
        figures = ("quantity", "amount", "orders")
        result = await session.execute(
            stmt.on_conflict_do_update(
                index_elements=keys,
                set_={name: columns[name] + stmt.excluded[name] for name in figures},
            ).returning(*(columns[k] for k in keys), *(columns[f] for f in figures))
        )
        # A row back at zero (everything cancelled) is dropped, so the tables do not depend
        # on how events were batched: a rebuild yields the very same rows.
        emptied = [tuple(row[: len(keys)]) for row in result if not any(row[len(keys) :])]
        if emptied:
            await session.execute(
                delete(table).where(tuple_(*(columns[k] for k in keys)).in_(emptied))
            )


def _learn(
    found: dict[str, dict[str, Any]], lines: Sequence[SoldLine], *, seen_at: datetime
) -> None:
    """Remember the newest name and category an order line gave each product."""
    for line in lines:
        known = found.get(line.product_id)
        if known is None or seen_at >= known["seen_at"]:
            found[line.product_id] = {
                "product_id": line.product_id,
                "name": line.name,
                "category": line.category,
                "price": line.unit_price,
                "source": "order",
                "seen_at": seen_at,
            }


async def _write_products(
    session: AsyncSession,
    *,
    from_orders: dict[str, dict[str, Any]],
    catalog: dict[str, dict[str, Any]],
) -> None:
    # An order line only fills in for a product the catalog has not described (yet), and a
    # newer line beats an older one: replaying in any partition interleaving gives the same row.
    for chunk in _chunks([from_orders[k] for k in sorted(from_orders)]):
        stmt = insert(Product).values(chunk)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Product.product_id],
                set_=_product_columns(stmt),
                where=(Product.source == "order") & (stmt.excluded.seen_at >= Product.seen_at),
            )
        )
    for chunk in _chunks([catalog[k] for k in sorted(catalog)]):
        stmt = insert(Product).values(chunk)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Product.product_id], set_=_product_columns(stmt)
            )
        )


def _product_columns(stmt: Any) -> dict[str, Any]:
    return {
        name: stmt.excluded[name] for name in ("name", "category", "price", "source", "seen_at")
    }


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + ROWS_PER_STATEMENT] for i in range(0, len(rows), ROWS_PER_STATEMENT)]
