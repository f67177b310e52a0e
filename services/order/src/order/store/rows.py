"""Orders as the saga's transactions read them: plain asyncpg statements, several per order."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from order.saga import Saga
from shopkit.db import Transaction
from shopkit.errors import Problem
from shopkit.pagination import decode_cursor, encode_cursor

SAGA = TypeAdapter(Saga)

COLUMNS = (
    "id, user_id, status, step, operation, saga, deadline, attempts, created_at, updated_at,"
    " correlation_id, traceparent"
)


@dataclass(frozen=True)
class Trail:
    """Where an order came from: its placing request's correlation id and trace context."""

    correlation_id: str | None = None
    traceparent: str | None = None


@dataclass
class OrderRow:
    """One `orders` row, as read and changed by the saga's transactions."""

    id: str
    user_id: str
    status: str
    step: str
    operation: str | None
    saga: dict[str, Any]
    deadline: datetime | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    correlation_id: str | None = None
    traceparent: str | None = None


class SagaStuck(Exception):
    """A saga row that cannot be moved: its state and its step disagree."""


def saga_of(row: OrderRow) -> Saga:
    """The saga stored in `row` (raises when it cannot be loaded)."""
    return SAGA.validate_python(row.saga)


@dataclass(frozen=True)
class HistoryEntry:
    status: str
    event: str
    detail: str
    at: datetime


async def read_order(conn: asyncpg.Connection, order_id: str) -> OrderRow | None:
    found = await conn.fetchrow(f"SELECT {COLUMNS} FROM orders WHERE id = $1", order_id)
    return None if found is None else OrderRow(**found)


async def lock_order(tx: Transaction, order_id: str) -> OrderRow | None:
    """The order, locked until `tx` ends."""
    found = await tx.fetchrow(f"SELECT {COLUMNS} FROM orders WHERE id = $1 FOR UPDATE", order_id)
    return None if found is None else OrderRow(**found)


async def lock_orders(tx: Transaction, order_ids: set[str]) -> dict[str, OrderRow]:
    """The orders among `order_ids` this database has, locked in id order (as every
    transaction here takes them), in one statement."""
    found = await tx.fetch(
        f"SELECT {COLUMNS} FROM orders WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        sorted(order_ids),
    )
    return {r["id"]: OrderRow(**r) for r in found}


async def history_of(conn: asyncpg.Connection, order_id: str) -> list[HistoryEntry]:
    """The order's history, oldest first."""
    found = await conn.fetch(
        "SELECT status, event, detail, at FROM order_history WHERE order_id = $1 ORDER BY seq",
        order_id,
    )
    return [HistoryEntry(**r) for r in found]


async def orders_of(
    conn: asyncpg.Connection, *, user_id: str, limit: int, cursor: str | None
) -> tuple[list[OrderRow], str | None]:
    """A page of the user's orders, newest first (ties by id), and the next page's cursor."""
    after = decode_cursor(cursor, size=2)
    try:
        since = datetime.fromisoformat(str(after[0])) if after else None
    except ValueError as exc:
        raise Problem(422, "INVALID_CURSOR", "cursor is not valid") from exc
    found = await conn.fetch(
        f"SELECT {COLUMNS} FROM orders WHERE user_id = $1"
        " AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        user_id,
        since,
        str(after[1]) if after else "",
        limit + 1,
    )
    rows = [OrderRow(**r) for r in found]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.created_at.isoformat(), last.id])
    return rows[:limit], next_cursor
