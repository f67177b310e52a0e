"""Applying a batch of order and catalog events to the analytics tables in one transaction.

The live consumer and the rebuild both go through `project`, so a rebuild gives the same rows.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from analytics.domain import Deltas, Figures, Projection, RecordedOrder, Sale, local_day, sales_of
from contracts import Envelope
from contracts.catalog import ProductChanged, ProductCreated
from contracts.order import OrderCancelled, OrderModified, OrderPaid, SoldLine
from shopkit.db import Transaction

OrderEvent = OrderPaid | OrderCancelled | OrderModified
ProjectedEvent = OrderEvent | ProductCreated | ProductChanged
PROJECTED: tuple[type[ProjectedEvent], ...] = (
    OrderPaid,
    OrderCancelled,
    OrderModified,
    ProductCreated,
    ProductChanged,
)


async def project(
    tx: Transaction,
    batch: Sequence[tuple[ProjectedEvent, Envelope]],
    *,
    timezone: str,
) -> None:
    """Apply events delivered for the first time, in order, with one statement per table."""
    order_ids = {event.order_id for event, _ in batch if isinstance(event, OrderEvent)}
    projection = Projection(orders=await _load_orders(tx, order_ids))
    catalog: dict[str, dict[str, Any]] = {}
    from_orders: dict[str, dict[str, Any]] = {}
    for event, _ in batch:
        if isinstance(event, OrderPaid):
            day = local_day(event.paid_at, timezone)
            projection.paid(event.order_id, day=day, sales=sales_of(event.lines))
            _learn(from_orders, event.lines, seen_at=event.paid_at)
        elif isinstance(event, OrderCancelled):
            projection.cancelled(event.order_id)
        elif isinstance(event, OrderModified):
            day = local_day(event.paid_at, timezone)
            projection.modified(event.order_id, day=day, sales=sales_of(event.lines))
            _learn(from_orders, event.lines, seen_at=event.modified_at)
        else:
            catalog[event.product_id] = {
                "product_id": event.product_id,
                "name": event.name,
                "category": event.category,
                "price": event.price,
                "source": "catalog",
                "seen_at": getattr(event, "created_at", None),
            }
    await _write_orders(tx, projection)
    await _write_deltas(tx, projection.deltas)
    await _write_products(tx, from_orders=from_orders, catalog=catalog)


async def _load_orders(tx: Transaction, order_ids: set[str]) -> dict[str, RecordedOrder | None]:
    orders: dict[str, RecordedOrder | None] = dict.fromkeys(order_ids)
    if not order_ids:
        return orders
    for row in await tx.fetch(LOAD_ORDERS, sorted(order_ids)):
        sales = tuple(Sale(*line) for line in orjson.loads(row["lines"]))
        orders[row["order_id"]] = RecordedOrder(day=row["day"], status=row["status"], sales=sales)
    return orders


async def _write_orders(tx: Transaction, projection: Projection) -> None:
    changed = [(i, o) for i in sorted(projection.changed) if (o := projection.orders[i])]
    if not changed:
        return
    orders = [o for _, o in changed]
    await tx.execute(
        SAVE_ORDERS,
        [i for i, _ in changed],
        [o.day for o in orders],
        [o.status for o in orders],
        [
            orjson.dumps(
                [[s.product_id, s.category, s.quantity, s.amount] for s in o.sales]
            ).decode()
            for o in orders
        ],
    )


async def _write_deltas(tx: Transaction, deltas: Deltas) -> None:
    # Sorted keys: concurrent replicas lock shared rows (today's totals) in the same order.
    tables: list[tuple[str, dict[tuple[Any, ...], Figures]]] = [
        ("product_daily_sales", dict(deltas.by_product)),
        ("category_daily_sales", dict(deltas.by_category)),
        ("daily_sales", {(day,): f for day, f in deltas.by_day.items()}),
    ]
    for table, found in tables:
        changes = [(key, found[key]) for key in sorted(found) if not found[key].is_zero()]
        if not changes:
            continue
        width = len(AGGREGATES[table][0])
        keys = [[key[i] for key, _ in changes] for i in range(width)]
        rows = await tx.fetch(
            ADD_FIGURES[table],
            *keys,
            [f.quantity for _, f in changes],
            [f.amount for _, f in changes],
            [f.orders for _, f in changes],
        )
        # A row back at zero (everything cancelled) is dropped, so the tables do not depend
        # on how events were batched: a rebuild yields the very same rows.
        emptied = [tuple(row)[:width] for row in rows if not any(tuple(row)[width:])]
        if emptied:
            await tx.execute(
                DROP_EMPTIED[table], *[[key[i] for key in emptied] for i in range(width)]
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
    tx: Transaction,
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
        await tx.execute(statement, *[[row[column] for row in rows] for column in PRODUCT_COLUMNS])


# Fixed statement texts over unnest()ed arrays: one prepared statement each, whatever the
# batch size (a multi-row VALUES list would be a new statement for every size).
LOAD_ORDERS = (
    "SELECT order_id, day, status, lines::text AS lines FROM sale_orders"
    " WHERE order_id = ANY($1::text[])"
)
SAVE_ORDERS = (
    "INSERT INTO sale_orders (order_id, day, status, lines)"
    " SELECT o, d, s, l::jsonb FROM unnest($1::text[], $2::date[], $3::text[], $4::text[])"
    " AS u(o, d, s, l)"
    " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, lines = excluded.lines"
)
AGGREGATES = {
    "product_daily_sales": (["product_id", "day", "category"], ["text", "date", "text"]),
    "category_daily_sales": (["category", "day"], ["text", "date"]),
    "daily_sales": (["day"], ["date"]),
}
FIGURES = ("quantity", "amount", "orders")


def _add_figures(table: str) -> str:
    keys, types = AGGREGATES[table]
    arrays = [f"${i}::{t}[]" for i, t in enumerate([*types, "bigint", "bigint", "int"], start=1)]
    columns = ", ".join([*keys, *FIGURES])
    return (
        f"INSERT INTO {table} AS t ({columns}) SELECT * FROM unnest({', '.join(arrays)})"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{f} = t.{f} + excluded.{f}" for f in FIGURES)
        + f" RETURNING {columns}"
    )


def _drop_emptied(table: str) -> str:
    keys, types = AGGREGATES[table]
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    return (
        f"DELETE FROM {table} WHERE ({', '.join(keys)}) IN (SELECT * FROM unnest({arrays}))"
        " AND quantity = 0 AND amount = 0 AND orders = 0"
    )


ADD_FIGURES = {table: _add_figures(table) for table in AGGREGATES}
DROP_EMPTIED = {table: _drop_emptied(table) for table in AGGREGATES}
PRODUCT_COLUMNS = ("product_id", "name", "category", "price", "source", "seen_at")
_LEARN = (
    "INSERT INTO products AS p (product_id, name, category, price, source, seen_at)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],"
    " $6::timestamptz[])"
    " ON CONFLICT (product_id) DO UPDATE SET name = excluded.name,"
    " category = excluded.category, price = excluded.price, source = excluded.source,"
    " seen_at = excluded.seen_at"
)
LEARN_FROM_ORDERS = _LEARN + " WHERE p.source = 'order' AND excluded.seen_at >= p.seen_at"
LEARN_FROM_CATALOG = _LEARN
