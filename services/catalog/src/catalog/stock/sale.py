"""Sold units: a commit turns reserved units into sold, a return puts sold units back."""

import logging
from collections.abc import Sequence
from datetime import datetime

from catalog.domain import Status, capped_returns, merge_lines, on_commit
from contracts.catalog import CommitStock, ReturnStock, StockReturned
from shopkit.db import Transaction, json_text
from shopkit.outbox import publish

log = logging.getLogger("catalog.stock")


async def commit_stock(tx: Transaction, *, commands: Sequence[CommitStock], now: datetime) -> None:
    """Turn each operation's reserved units into sold, once. No reply: the saga does not wait
    for it (a commit of held units cannot fail), and a later ReturnStock of the same order comes
    after it on the same partition.

    Set-based, for a poll of commits: two statements however many there are."""
    # The one transition that moves stock, taken in the statement that reads the rows (a read
    # FOR UPDATE and a write before); from any other status a commit changes nothing.
    committed = on_commit(Status.RESERVED)
    op_ids = sorted({command.operation_id for command in commands})
    rows = await tx.fetch(
        "UPDATE reservations SET status = $2, updated_at = $3"
        " WHERE operation_id = ANY($1::text[]) AND status = $4"
        " RETURNING operation_id, order_id, lines",
        op_ids,
        committed.status,
        now,
        Status.RESERVED,
    )
    if len(rows) < len(op_ids):
        await _commit_nothing(tx, set(op_ids) - {row["operation_id"] for row in rows})
    # Stock rows in product-id order, as a reservation locks them; each line's sale with it.
    sold = sorted(
        (line["product_id"], row["order_id"], line["quantity"])
        for row in rows
        for line in row["lines"]
    )
    if sold:
        await tx.executemany(_SELL, [(order_id, pid, q) for pid, order_id, q in sold])


async def _commit_nothing(tx: Transaction, op_ids: set[str]) -> None:
    """Commits of operations that are not RESERVED change nothing; only a repeat is normal."""
    found = dict(
        await tx.fetch(
            "SELECT operation_id, status FROM reservations WHERE operation_id = ANY($1::text[])",
            sorted(op_ids),
        )
    )
    for op_id in sorted(op_ids):
        status = found.get(op_id)
        if status is None:
            log.warning("commit of an unknown stock operation %s", op_id)
        elif status != Status.COMMITTED:
            log.warning("commit of a %s stock operation", status)


async def return_stock(tx: Transaction, *, command: ReturnStock, now: datetime) -> None:
    """Put sold units back on the shelf, never more than the order holds as sold."""
    op, order_id = command.operation_id, command.order_id
    claimed = await tx.fetchval(
        "INSERT INTO stock_returns (operation_id, order_id, lines, created_at)"
        " VALUES ($1, $2, '{}', $3) ON CONFLICT DO NOTHING RETURNING operation_id",
        op,
        order_id,
        now,
    )
    if claimed is not None:
        requested = merge_lines((line.product_id, line.quantity) for line in command.lines)
        sales = await tx.fetch(
            "SELECT product_id, sold FROM order_sales WHERE order_id = $1"
            " AND product_id = ANY($2::text[]) ORDER BY product_id FOR UPDATE",
            order_id,
            list(requested),
        )
        returned = capped_returns(requested, {r["product_id"]: r["sold"] for r in sales})
        if returned:
            await tx.executemany(_PUT_BACK, [(order_id, pid, q) for pid, q in returned.items()])
            await tx.execute(
                "UPDATE stock_returns SET lines = $2 WHERE operation_id = $1",
                op,
                json_text(returned),
            )
    await publish(tx, StockReturned(order_id=order_id, operation_id=op))


# $1 order, $2 product, $3 quantity: the stock row and the order's sale of it move together.
_SELL = (
    "WITH sold AS (UPDATE stock SET reserved = reserved - $3, sold = sold + $3,"
    " version = version + 1 WHERE product_id = $2)"
    " INSERT INTO order_sales (order_id, product_id, sold) VALUES ($1, $2, $3)"
    " ON CONFLICT (order_id, product_id) DO UPDATE SET sold = order_sales.sold + EXCLUDED.sold"
)
_PUT_BACK = (
    "WITH sale AS (UPDATE order_sales SET sold = sold - $3 WHERE order_id = $1"
    " AND product_id = $2)"
    " UPDATE stock SET available = available + $3, sold = sold - $3, version = version + 1"
    " WHERE product_id = $2"
)
