"""Applying a batch of order and catalog events to the analytics tables in one transaction.

The live consumer and the rebuild both call `project`, so a rebuild gives the same rows.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import TextClause, Uuid, bindparam, column, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.consumer import Delivery
from analytics.domain import Deltas, Figures, Projection, RecordedOrder, Sale, local_day, sales_of
from contracts import Message
from contracts.catalog import ProductChanged, ProductCreated
from contracts.order import OrderCancelled, OrderModified, OrderPaid, SoldLine
from shopkit.inbox import first_deliveries

CONSUMER = "analytics-projection"
HANDLED: tuple[type[Message], ...] = (
    OrderPaid,
    OrderCancelled,
    OrderModified,
    ProductCreated,
    ProductChanged,
)
OrderEvent = OrderPaid | OrderCancelled | OrderModified
# The kit's inbox table, named here for the rebuild to forget what the projection applied.
INBOX = table(
    "inbox", column("consumer"), column("message_id", Uuid), column("type"), column("outcome")
)


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
    # The kit's inbox: it also lets a redriven dead letter through once (shopkit.inbox).
    new = await first_deliveries(
        session,
        consumer=CONSUMER,
        messages=[(mid, d.envelope.type) for mid, d in unique.items()],
    )
    return [d for mid, d in unique.items() if mid in new]


async def _load_orders(
    session: AsyncSession, order_ids: set[str]
) -> dict[str, RecordedOrder | None]:
    orders: dict[str, RecordedOrder | None] = dict.fromkeys(order_ids)
    if not order_ids:
        return orders
    for row in await session.execute(LOAD_ORDERS, {"ids": sorted(order_ids)}):
        sales = tuple(Sale(*line) for line in orjson.loads(row.lines))
        orders[row.order_id] = RecordedOrder(day=row.day, status=row.status, sales=sales)
    return orders


async def _write_orders(session: AsyncSession, projection: Projection) -> None:
    changed = sorted(projection.changed)
    if not changed:
        return
    orders = [projection.orders[order_id] for order_id in changed]
    await session.execute(
        SAVE_ORDERS,
        {
            "ids": changed,
            "days": [o.day for o in orders if o],
            "statuses": [o.status for o in orders if o],
            "lines": [
                orjson.dumps(
                    [[s.product_id, s.category, s.quantity, s.amount] for s in o.sales]
                ).decode()
                for o in orders
                if o
            ],
        },
    )


async def _write_deltas(session: AsyncSession, deltas: Deltas) -> None:
    # Sorted keys: concurrent replicas lock shared rows (today's totals) in the same order.
    tables: list[tuple[str, dict[tuple[Any, ...], Figures]]] = [
        ("product_daily_sales", dict(deltas.by_product)),
        ("category_daily_sales", dict(deltas.by_category)),
        ("daily_sales", {(day,): f for day, f in deltas.by_day.items()}),
    ]
    for name, found in tables:
        changes = [(key, found[key]) for key in sorted(found) if not found[key].is_zero()]
        if not changes:
            continue
        keys, _ = AGGREGATES[name]
        params: dict[str, Any] = {f"k{i}": [key[i] for key, _ in changes] for i in range(len(keys))}
        params |= {
            "quantity": [f.quantity for _, f in changes],
            "amount": [f.amount for _, f in changes],
            "orders": [f.orders for _, f in changes],
        }
        result = await session.execute(ADD_FIGURES[name], params)
        # A row back at zero (everything cancelled) is dropped, so the tables do not depend
        # on how events were batched: a rebuild yields the very same rows.
        emptied = [tuple(row[: len(keys)]) for row in result if not any(row[len(keys) :])]
        if emptied:
            await session.execute(
                text(f"DELETE FROM {name} WHERE ({', '.join(keys)}) IN :keys").bindparams(
                    bindparam("keys", expanding=True)
                ),
                {"keys": emptied},
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
    for statement, found in ((LEARN_FROM_ORDERS, from_orders), (LEARN_FROM_CATALOG, catalog)):
        if not found:
            continue
        rows = [found[k] for k in sorted(found)]
        await session.execute(
            statement, {column: [row[column] for row in rows] for column in PRODUCT_COLUMNS}
        )


# Fixed statement texts over unnest()ed arrays: one prepared statement each, whatever the
# batch size (a multi-row VALUES list is compiled and planned anew for every size).
LOAD_ORDERS = text(
    "SELECT order_id, day, status, lines::text AS lines FROM sale_orders"
    " WHERE order_id = ANY(CAST(:ids AS text[]))"
)
SAVE_ORDERS = text(
    "INSERT INTO sale_orders (order_id, day, status, lines)"
    " SELECT o, d, s, l::jsonb FROM unnest(CAST(:ids AS text[]), CAST(:days AS date[]),"
    " CAST(:statuses AS text[]), CAST(:lines AS text[])) AS u(o, d, s, l)"
    " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, lines = excluded.lines"
)
AGGREGATES = {
    "product_daily_sales": (["product_id", "day", "category"], ["text", "date", "text"]),
    "category_daily_sales": (["category", "day"], ["text", "date"]),
    "daily_sales": (["day"], ["date"]),
}


def _add_figures_statement(table: str) -> TextClause:
    keys, types = AGGREGATES[table]
    arrays = [f"CAST(:k{i} AS {t}[])" for i, t in enumerate(types)]
    arrays += ["CAST(:quantity AS bigint[])", "CAST(:amount AS bigint[])", "CAST(:orders AS int[])"]
    figures = ("quantity", "amount", "orders")
    return text(
        f"INSERT INTO {table} AS t ({', '.join(keys)}, quantity, amount, orders)"
        f" SELECT * FROM unnest({', '.join(arrays)})"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{f} = t.{f} + excluded.{f}" for f in figures)
        + f" RETURNING {', '.join(keys)}, quantity, amount, orders"
    )


ADD_FIGURES = {table: _add_figures_statement(table) for table in AGGREGATES}
PRODUCT_COLUMNS = ("product_id", "name", "category", "price", "source", "seen_at")
_LEARN = (
    "INSERT INTO products AS p (product_id, name, category, price, source, seen_at)"
    " SELECT * FROM unnest(CAST(:product_id AS text[]), CAST(:name AS text[]),"
    " CAST(:category AS text[]), CAST(:price AS bigint[]), CAST(:source AS text[]),"
    " CAST(:seen_at AS timestamptz[]))"
    " ON CONFLICT (product_id) DO UPDATE SET name = excluded.name,"
    " category = excluded.category, price = excluded.price, source = excluded.source,"
    " seen_at = excluded.seen_at"
)
LEARN_FROM_ORDERS = text(_LEARN + " WHERE p.source = 'order' AND excluded.seen_at >= p.seen_at")
LEARN_FROM_CATALOG = text(_LEARN)
