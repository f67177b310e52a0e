"""Late payments: an approval the provider records after its order gave up on it.

When a payment call times out, the saga voids whatever the provider holds a moment later
(VOIDING_PAYMENT) and the order fails; a provider that approves later still would leave money
taken for a FAILED order. So every timed-out order gets a payment check (`payment_checks`,
written with the saga's move to VOIDING_PAYMENT): a periodic job looks the order up at the
provider a few times, further apart each time, and cancels any approved payment it finds,
with a history entry. Each run takes a bounded batch, and each order is looked up on its own:
one the provider cannot answer for is tried again later and holds no other back.
"""

import asyncio
import logging
from datetime import datetime, timedelta

from fastapi import FastAPI

from order.provider import PaymentProvider
from order.settings import Settings
from shopkit.clock import Clock
from shopkit.db import Database

log = logging.getLogger("order.reconcile")


async def claim_checks(db: Database, *, settings: Settings, now: datetime) -> list[tuple[str, int]]:
    """Lease the due checks, at most a batch: (order id, how many times it was looked up, this
    time included). A crashed run's lease runs out and the check comes due again."""
    async with db.autocommit() as conn:
        rows = await conn.fetch(
            "UPDATE payment_checks SET due_at = $1, checks = checks + 1 WHERE order_id IN ("
            " SELECT order_id FROM payment_checks WHERE due_at <= $2 ORDER BY due_at LIMIT $3"
            " FOR UPDATE SKIP LOCKED) RETURNING order_id, checks",
            now + timedelta(seconds=settings.reconcile_delay_seconds),
            now,
            settings.reconcile_batch,
        )
    return [(r["order_id"], r["checks"]) for r in rows]


async def checked(
    db: Database,
    *,
    order_id: str,
    cancelled: tuple[str, ...],
    checks: int,
    settings: Settings,
    now: datetime,
) -> None:
    """Record one look-up: the late payments it cancelled in the order's history, and the next
    look-up (none after the last one)."""
    async with db.transaction() as tx:
        if cancelled:
            await tx.execute(
                "INSERT INTO order_history (order_id, status, step, event, detail, at)"
                " SELECT id, status, step, 'LatePaymentCancelled', $2, $3 FROM orders"
                " WHERE id = $1",
                order_id,
                ", ".join(cancelled),
                now,
            )
        if checks >= settings.reconcile_checks:
            await tx.execute("DELETE FROM payment_checks WHERE order_id = $1", order_id)
        else:
            later = settings.reconcile_delay_seconds * 2**checks
            await tx.execute(
                "UPDATE payment_checks SET due_at = $2 WHERE order_id = $1",
                order_id,
                now + timedelta(seconds=later),
            )


async def reconcile_payments(
    db: Database, provider: PaymentProvider, *, settings: Settings, clock: Clock
) -> int:
    """One run: look up the due orders at the provider and cancel their late payments; the
    number of orders looked up."""
    due = await claim_checks(db, settings=settings, now=clock())
    for order_id, checks in due:
        try:
            cancelled = await provider.cancel_approved(order_id=order_id)
            await checked(
                db,
                order_id=order_id,
                cancelled=cancelled,
                checks=checks,
                settings=settings,
                now=clock(),
            )
        except Exception:
            log.exception(
                "late-payment check failed; tried again later",
                extra={"fields": {"order_id": order_id, "checks": checks}},
            )
        else:
            if cancelled:
                log.warning(
                    "late payment cancelled",
                    extra={"fields": {"order_id": order_id, "payments": list(cancelled)}},
                )
    return len(due)


async def reconciler(app: FastAPI) -> None:
    """Background job: a reconciliation run every `reconcile_interval_seconds`."""
    settings: Settings = app.state.settings
    provider = PaymentProvider(settings)
    try:
        while True:
            try:
                await reconcile_payments(
                    app.state.db, provider, settings=settings, clock=app.state.clock
                )
            except Exception:
                log.exception("reconciliation run failed")
            await asyncio.sleep(settings.reconcile_interval_seconds)
    finally:
        await provider.close()
