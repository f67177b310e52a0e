"""Sagas handed out by time: provider steps leased to the payment worker, overdue steps to the
deadline scan. A row's `deadline` is both: when its reply is overdue, or when the worker may
(re)take its provider step; a lease moves it forward, so a crashed holder's lease runs out."""

import logging
from datetime import datetime, timedelta
from typing import NamedTuple

from order import parking
from order.saga import PROVIDER_STEPS, Saga
from order.store.rows import COLUMNS, SAGA, OrderRow, SagaStuck, Trail
from shopkit.db import Database, Transaction

log = logging.getLogger("order.store")


class ProviderWork(NamedTuple):
    """A provider step leased to the payment worker: its `attempt` counts this lease."""

    order_id: str
    step: str
    saga: Saga
    attempt: int
    trail: Trail


# `step <> 'DONE'` is implied by the steps but written out: it is the deadline index's
# condition, and only with it can a plan prepared once (for any steps) use that index.
_LEASE = (
    "UPDATE orders SET deadline = $1, attempts = attempts + 1 WHERE id IN ("
    " SELECT id FROM orders WHERE step = ANY($2::text[]) AND step <> 'DONE' AND deadline <= $3"
    " ORDER BY deadline LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, step, saga, attempts, correlation_id, traceparent"
)


async def claim_provider_work(
    db: Database, *, lease_seconds: float, now: datetime, limit: int
) -> list[ProviderWork]:
    """Lease up to `limit` sagas waiting on the payment provider, in one statement atomic on
    its own (no transaction around it: BEGIN and COMMIT would be two more round trips). A row
    whose saga cannot be loaded, or is not at the row's step, is parked: it holds no one back."""
    async with db.autocommit() as conn:
        leased = await conn.fetch(
            _LEASE, now + timedelta(seconds=lease_seconds), list(PROVIDER_STEPS), now, limit
        )
        claimed = []
        for r in leased:
            try:
                saga = SAGA.validate_python(r["saga"])
                if saga.step != r["step"]:
                    raise SagaStuck(f"the saga is at {saga.step}, its row at {r['step']}")
            except (ValueError, SagaStuck) as exc:
                log.error("saga cannot be driven; parked", extra={"fields": {"order_id": r["id"]}})
                await parking.park(conn, order_id=r["id"], error=parking.describe(exc), now=now)
            else:
                trail = Trail(r["correlation_id"], r["traceparent"])
                claimed.append(ProviderWork(r["id"], r["step"], saga, r["attempts"], trail))
        return claimed


async def retry_provider_later(db: Database, *, order_id: str, step: str, at: datetime) -> None:
    """Give a leased provider step back to the worker, to be tried again at `at`."""
    async with db.autocommit() as conn:
        await conn.execute(
            "UPDATE orders SET deadline = $3 WHERE id = $1 AND step = $2", order_id, step, at
        )


async def lock_overdue(tx: Transaction, *, now: datetime, limit: int) -> list[OrderRow]:
    """Lock up to `limit` orders whose step's reply is overdue, most overdue first (provider
    steps are the payment worker's); others' locked rows are skipped."""
    found = await tx.fetch(
        f"SELECT {COLUMNS} FROM orders WHERE step <> 'DONE' AND step <> ALL($1::text[])"
        " AND deadline <= $2 ORDER BY deadline LIMIT $3 FOR UPDATE SKIP LOCKED",
        list(PROVIDER_STEPS),
        now,
        limit,
    )
    return [OrderRow(**r) for r in found]
