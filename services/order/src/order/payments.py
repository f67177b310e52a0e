"""The payment worker: it drives the saga's provider steps (PAYING, VOIDING_PAYMENT,
CANCEL_PAYMENT) over HTTP.

HTTP never runs inside a database transaction: the worker leases a saga (store.leases: its
deadline moves forward, so a crashed worker's lease simply runs out), calls the provider, and
feeds the result back to the saga in a new transaction. It wakes when a saga enters a provider
step (a NOTIFY on `PROVIDER_WORK_CHANNEL` from any replica, see main.listen), after the LISTEN
connection reconnects, when a busy slot frees up, and every `scan_interval_seconds` anyway.
"""

import asyncio
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from order import parking, service
from order.provider import PaymentProvider, ProviderUnavailable
from order.saga import (
    Event,
    PaymentApproved,
    PaymentDeclined,
    PaymentsCancelled,
    PaymentTimedOut,
    ProviderCancelFailed,
)
from order.settings import Settings
from order.store.leases import ProviderWork, claim_provider_work, retry_provider_later
from shopkit import tracing
from shopkit.clock import Clock
from shopkit.db import Database, Transaction
from shopkit.faults import is_transient
from shopkit.grouping import GroupCommit
from shopkit.logs import correlation_id

log = logging.getLogger("order.payments")


async def drive(
    provider: PaymentProvider, work: ProviderWork, *, settings: Settings
) -> Event | None:
    """Do one provider step over HTTP; the event to feed the saga, or None to try later."""
    order_id, attempt = work.saga.order_id, work.attempt
    try:
        if work.step == "PAYING":
            result = await provider.pay(order_id=order_id, amount=work.saga.total)
            if result.status == "APPROVED":
                return PaymentApproved(payment_id=result.payment_id)
            if result.status == "DECLINED":
                return PaymentDeclined(payment_id=result.payment_id)
            return PaymentTimedOut(detail=result.detail)
        return PaymentsCancelled(payment_ids=await provider.cancel_all(order_id=order_id))
    except ProviderUnavailable as exc:
        log.warning(
            "provider unavailable", extra={"fields": {"order_id": order_id, "error": str(exc)}}
        )
        if work.step == "PAYING" and attempt >= settings.max_payment_attempts:
            return PaymentTimedOut(detail=f"provider unavailable after {attempt} attempt(s)")
        if work.step != "PAYING" and attempt >= settings.max_compensation_attempts:
            return ProviderCancelFailed(detail=f"cancel failed {attempt} time(s): {exc}")
        return None


class ProviderOutcomes:
    """Feeds what the provider answered back to the sagas, many per transaction (`GroupCommit`):
    the outcomes that arrive while one group is written go together in the next, in one read
    and one write (`service.apply_events`)."""

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self._group: GroupCommit[tuple[str, Event, str | None]] = GroupCommit(
            "provider-outcomes", db.transaction, self._apply
        )

    async def record(self, order_id: str, event: Event) -> None:
        """Feed `event` to the order's saga; return once committed."""
        # Each with its own order's correlation id: a group is written in its first one's context.
        await self._group.submit((order_id, event, correlation_id.get()))

    async def _apply(self, tx: Transaction, outcomes: list[tuple[str, Event, str | None]]) -> None:
        await service.apply_events(tx, settings=self.settings, events=outcomes, now=self.clock())


async def do_provider_step(
    db: Database,
    provider: PaymentProvider,
    outcomes: ProviderOutcomes,
    work: ProviderWork,
    *,
    settings: Settings,
    clock: Clock,
) -> None:
    """Do one leased provider step and feed its outcome to the saga, or give the step back to
    be tried again after a backoff."""
    # The provider's logs and spans join the order's: its correlation id and trace go along.
    token = correlation_id.set(work.trail.correlation_id)
    try:
        with tracing.calling(
            f"provider {work.step}", work.trail.traceparent, **{"shop.order_id": work.order_id}
        ):
            event = await drive(provider, work, settings=settings)
        if event is None:
            backoff = min(0.2 * 2**work.attempt, 10.0)
            await retry_provider_later(
                db, order_id=work.order_id, step=work.step, at=clock() + timedelta(seconds=backoff)
            )
            return
        await outcomes.record(work.order_id, event)
    finally:
        correlation_id.reset(token)


async def payment_worker(app: FastAPI) -> None:
    """Background job: lease provider steps, run them concurrently, feed the outcomes back."""
    settings: Settings = app.state.settings
    db: Database = app.state.db
    clock: Clock = app.state.clock
    wake: asyncio.Event = app.state.provider_work
    provider = PaymentProvider(settings)
    outcomes = ProviderOutcomes(db, settings, clock)
    lease = settings.payment_timeout_seconds * 2 + 5
    running: set[asyncio.Task[None]] = set()
    # Whether the last claim may have left work behind for want of a free slot: only then is a
    # finished step worth a new claim (else new work announces itself, and an empty claim per
    # finished payment would be wasted).
    slots_were_short = False

    def slot_freed(_: asyncio.Task[None]) -> None:
        if slots_were_short:
            wake.set()

    try:
        while True:
            wake.clear()
            free = settings.payment_concurrency - len(running)
            claimed = []
            if free > 0:
                try:
                    claimed = await claim_provider_work(
                        db, lease_seconds=lease, now=clock(), limit=free
                    )
                except Exception:
                    log.exception("claiming provider work failed")
            for work in claimed:
                step = do_provider_step(
                    db, provider, outcomes, work, settings=settings, clock=clock
                )
                task = asyncio.create_task(_guarded(db, work.order_id, clock, step))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(slot_freed)
            slots_were_short = free <= 0 or len(claimed) == free
            # At capacity (free == 0) or out of work: wait for a task to finish or a new step.
            # Looping straight on at capacity would never yield and starve the event loop.
            if len(claimed) < free or free <= 0:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=settings.scan_interval_seconds)
                except TimeoutError:
                    pass
    finally:
        for task in running:
            task.cancel()
        await provider.close()


async def _guarded(
    db: Database, order_id: str, clock: Clock, step: Coroutine[Any, Any, None]
) -> None:
    """Run one provider step; a transient failure is tried again when its lease runs out, any
    other parks the order, so it is not retried blindly forever."""
    try:
        await step
    except Exception as exc:
        if is_transient(exc):
            log.warning("provider step failed; its lease will run out and it is tried again")
            return
        log.exception("provider step failed; parked", extra={"fields": {"order_id": order_id}})
        try:
            async with db.autocommit() as conn:
                await parking.park(
                    conn, order_id=order_id, error=parking.describe(exc), now=clock()
                )
        except Exception:
            log.exception("parking failed; the lease will run out and it is tried again")
