"""Parked sagas: orders whose saga stopped retrying, listed and retried by an operator.

A saga parks itself when a compensation (or a cancel or modify step) runs out of attempts
(`saga.Transition.parked`); the scans park a row whose saga cannot be loaded or advanced, so it
holds no other order back. A parked order keeps its step and keeps waiting for its replies: a
late reply moves it on and unparks it, as does an operator's retry, which resumes its step.
"""

from datetime import datetime
from typing import Any

import asyncpg
from fastapi import FastAPI

from shopkit import tracing
from shopkit.db import Database, Transaction
from shopkit.errors import Problem
from shopkit.pagination import decode_cursor, encode_cursor

_MAX_ERROR = 2000


def describe(exc: BaseException) -> str:
    """An error as an operator reads it, bounded in size."""
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]


async def mark_parked(tx: Transaction, parked: dict[str, tuple[str, datetime]]) -> None:
    """Park sagas that said so themselves (their history is saved with their transition)."""
    await tx.execute(
        "UPDATE orders o SET parked_at = p.at, last_error = p.error, deadline = NULL"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS p(id, error, at)"
        " WHERE o.id = p.id",
        list(parked),
        [error for error, _ in parked.values()],
        [at for _, at in parked.values()],
    )


async def park(conn: asyncpg.Connection, *, order_id: str, error: str, now: datetime) -> None:
    """Park an order whose saga could not be loaded or advanced, with a history entry."""
    await conn.execute(
        "WITH parked AS (UPDATE orders SET parked_at = $3, last_error = $2, deadline = NULL"
        " WHERE id = $1 RETURNING id, status, step)"
        " INSERT INTO order_history (order_id, status, step, event, detail, at)"
        " SELECT id, status, step, 'SagaParked', $2, $3 FROM parked",
        order_id,
        error[:_MAX_ERROR],
        now,
    )


async def list_parked(
    db: Database, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of parked orders, longest parked first, each with its history (oldest first)."""
    after = decode_cursor(cursor, size=2)
    try:
        since = datetime.fromisoformat(str(after[0])) if after else None
    except ValueError as exc:
        raise Problem(422, "INVALID_CURSOR", "cursor is not valid") from exc
    async with db.autocommit() as conn:
        rows = await conn.fetch(
            "SELECT id, user_id, status, step, operation, attempts, parked_at, last_error,"
            " traceparent FROM orders WHERE parked_at IS NOT NULL"
            " AND ($1::timestamptz IS NULL OR (parked_at, id) > ($1, $2))"
            " ORDER BY parked_at, id LIMIT $3",
            since,
            str(after[1]) if after else "",
            limit + 1,
        )
        page = [dict(r) for r in rows[:limit]]
        found = await conn.fetch(
            "SELECT order_id, status, event, detail, at FROM order_history"
            " WHERE order_id = ANY($1::text[]) ORDER BY order_id, seq",
            [r["id"] for r in page],
        )
    history: dict[str, list[dict[str, Any]]] = {}
    for h in found:
        history.setdefault(h["order_id"], []).append(dict(h))
    for r in page:
        r["trace_id"] = tracing.trace_id_of(r.pop("traceparent"))
        r["history"] = [{**h, "trace_id": r["trace_id"]} for h in history.get(r["id"], [])]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor([last["parked_at"].isoformat(), last["id"]])
    return page, next_cursor


async def retry_parked(db: Database, *, order_id: str, by: str, now: datetime) -> None:
    """Unpark an order and resume its step: the next deadline scan sends its commands again,
    or the payment worker's next claim takes it; 404 ORDER_NOT_FOUND, 409 ORDER_NOT_PARKED."""
    async with db.transaction() as tx:
        retried = await tx.fetchval(
            "WITH retried AS (UPDATE orders SET parked_at = NULL, last_error = NULL,"
            " deadline = $2, attempts = 0 WHERE id = $1 AND parked_at IS NOT NULL"
            " RETURNING id, status, step)"
            " INSERT INTO order_history (order_id, status, step, event, detail, at)"
            " SELECT id, status, step, 'RetryRequested', $3, $2 FROM retried RETURNING step",
            order_id,
            now,
            f"by {by}",
        )
        if retried is None:
            exists = await tx.fetchval("SELECT 1 FROM orders WHERE id = $1", order_id)
            if exists is None:
                raise Problem(404, "ORDER_NOT_FOUND", f"no order {order_id}")
            raise Problem(409, "ORDER_NOT_PARKED", "the order is not parked")


_SAGAS = (
    # Only sagas in flight: the partial index of unfinished orders (ix_orders_deadline) covers
    # them, and finished ones would make the count a scan of every order.
    "SELECT step, count(*), count(parked_at) FROM orders WHERE step <> 'DONE' GROUP BY step"
)


async def saga_metrics(app: FastAPI) -> None:
    """Register the saga gauges, read at each scrape of /metrics."""
    metrics = app.state.metrics
    by_step = metrics.gauge(
        "shop_sagas_in_flight", "Orders whose saga is not DONE, by step", ["step"]
    )
    parked = metrics.gauge(
        "shop_sagas_parked", "Orders whose saga stopped retrying, by step", ["step"]
    )

    async def read(conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(_SAGAS)
        by_step.clear()
        parked.clear()
        for step, count, parked_count in rows:
            by_step.labels(step).set(count)
            parked.labels(step).set(parked_count)

    metrics.on_scrape_query("sagas", read)
