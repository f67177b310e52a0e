"""Releasing a reservation: its reserved units go back on the shelf, once."""

from datetime import datetime

from catalog.domain import Status, on_release
from contracts.catalog import ReleaseStock, StockReleased
from shopkit.db import Transaction
from shopkit.outbox import publish


async def release_stock(tx: Transaction, *, command: ReleaseStock, now: datetime) -> None:
    """Give the operation's reserved units back once; a Release before its Reserve voids it."""
    op = command.operation_id
    voided = await tx.fetchval(_VOID, op, command.order_id, Status.VOIDED, now)
    if voided is None:
        row = await tx.fetchrow(
            "SELECT status, lines FROM reservations WHERE operation_id = $1 FOR UPDATE", op
        )
        assert row is not None
        step = on_release(Status(row["status"]))
        if step.moves_stock:
            # In product-id order, as a reservation locks them.
            back = sorted((line["product_id"], line["quantity"]) for line in row["lines"])
            await tx.executemany(_GIVE_BACK, back)
        await tx.execute(
            "UPDATE reservations SET status = $2, updated_at = $3 WHERE operation_id = $1",
            op,
            step.status,
            now,
        )
    await publish(tx, StockReleased(order_id=command.order_id, operation_id=op))


# The operation's row with nothing held; no row back when it exists (a concurrent claim waits
# for ours).
_VOID = (
    "INSERT INTO reservations (operation_id, order_id, status, reason, failed_product_ids,"
    " lines, created_at, updated_at) VALUES ($1, $2, $3, NULL, '[]', '[]', $4, $4)"
    " ON CONFLICT DO NOTHING RETURNING operation_id"
)
_GIVE_BACK = (
    "UPDATE stock SET available = available + $2, reserved = reserved - $2,"
    " version = version + 1 WHERE product_id = $1"
)
