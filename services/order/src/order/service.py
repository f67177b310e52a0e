"""Order use cases: each feeds its events to the saga (saga.py) and saves what moved (store), in
one transaction of its own or the caller's."""

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from order import parking
from order.saga import (
    CancelRequested,
    DeadlinePassed,
    Event,
    ModifyRequested,
    Saga,
    Transition,
    advance,
    new_order,
)
from order.settings import Settings
from order.store import leases, rows
from order.store.rows import HistoryEntry, OrderRow, SagaStuck, saga_of
from order.store.sagas import MovedSagas
from shopkit import tracing
from shopkit.db import Database, Transaction
from shopkit.errors import Problem
from shopkit.faults import is_transient
from shopkit.grouping import GroupCommit
from shopkit.logs import correlation_id as current_correlation

log = logging.getLogger("order.service")


def _placed(
    *, user_id: str, items: Sequence[tuple[str, int]], coupon_id: str | None, now: datetime
) -> tuple[OrderRow, Transition]:
    """A new PENDING order's row (saved by `_save_placed`) and its first transition."""
    order_id = str(uuid.uuid4())
    start = new_order(
        order_id=order_id, user_id=user_id, items=tuple(items), coupon_id=coupon_id, now=now
    )
    row = OrderRow(
        id=order_id,
        user_id=user_id,
        status="PENDING",
        step=start.saga.step,
        operation=None,
        saga={},
        deadline=None,
        attempts=0,
        created_at=now,
        updated_at=now,
        correlation_id=current_correlation.get(),
        traceparent=tracing.current_traceparent(),
    )
    return row, start


async def _save_placed(
    tx: Transaction, placed: list[tuple[OrderRow, Transition]], *, settings: Settings
) -> None:
    moved = MovedSagas(settings, new=True)
    for row, start in placed:
        # Its own request's correlation id: a group is written in the first request's context.
        moved.add(row, None, start, now=row.created_at, correlation=row.correlation_id)
    await moved.save(tx)


async def place_order(
    tx: Transaction,
    *,
    settings: Settings,
    user_id: str,
    items: Sequence[tuple[str, int]],
    coupon_id: str | None,
    now: datetime,
) -> OrderRow:
    """Record a PENDING order and ask the catalog for its stock, inside the caller's
    transaction `tx` (e.g. with its idempotency record)."""
    row, start = _placed(user_id=user_id, items=items, coupon_id=coupon_id, now=now)
    await _save_placed(tx, [(row, start)], settings=settings)
    return row


class OrderPlacement:
    """Orders placed by concurrent requests, saved together: one group of statements and one
    commit (a WAL flush) for every order that arrived while the previous group was being
    written (`GroupCommit`). Under no load a group is one order."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.settings = settings
        self._group: GroupCommit[tuple[OrderRow, Transition]] = GroupCommit(
            "place", db.transaction, self._write
        )

    async def place(
        self,
        *,
        user_id: str,
        items: Sequence[tuple[str, int]],
        coupon_id: str | None,
        now: datetime,
    ) -> tuple[OrderRow, Saga]:
        """Record a PENDING order and ask the catalog for its stock; once committed, its row
        and saga."""
        row, start = _placed(user_id=user_id, items=items, coupon_id=coupon_id, now=now)
        await self._group.submit((row, start))
        return row, start.saga

    async def _write(self, tx: Transaction, placed: list[tuple[OrderRow, Transition]]) -> None:
        await _save_placed(tx, placed, settings=self.settings)


async def apply_events(
    tx: Transaction,
    *,
    settings: Settings,
    events: Sequence[tuple[str, Event, str | None]],
    now: datetime,
) -> None:
    """Feed replies or provider results, each `(order id, event, correlation id)`, to their
    orders' sagas in the given order, inside the caller's transaction `tx`.

    The orders are locked and read in one statement and saved in two, however many events
    there are. An event the saga does not expect changes nothing, and one for an order this
    database never had (another namespace's) is skipped. An order whose saga cannot be
    advanced is parked; the others move on."""
    found = await rows.lock_orders(tx, {order_id for order_id, _, _ in events})
    moved = MovedSagas(settings)
    broken: dict[str, str] = {}
    for order_id, event, correlation in events:
        row = found.get(order_id)
        if row is None or order_id in broken:
            continue
        try:
            before = moved.saga_of(row)
            transition = advance(before, event, now)
            if transition.applied:
                moved.add(row, before, transition, now=now, correlation=correlation)
        except Exception as exc:  # the saga is pure: this is the row's or the code's fault
            broken[order_id] = parking.describe(exc)
            moved.forget(order_id)
    await moved.save(tx)
    for order_id, error in broken.items():
        log.error("saga cannot be advanced; parked", extra={"fields": {"order_id": order_id}})
        await parking.park(tx, order_id=order_id, error=error, now=now)


async def run_deadlines(
    db: Database, *, settings: Settings, now: datetime, limit: int = 100
) -> int:
    """Re-send (or give up on, or park) every step whose reply is overdue; the number handled.

    Each order runs in a savepoint of its own: one whose saga cannot be loaded or advanced is
    parked with its error and the others go on. A transient failure (the database away) ends
    the scan; the next one does it again."""
    async with db.transaction() as tx:
        overdue = await leases.lock_overdue(tx, now=now, limit=limit)
        for row in overdue:
            try:
                async with tx.transaction():  # a savepoint
                    await _deadline_passed(tx, row, settings=settings, now=now)
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.exception(
                    "saga cannot be advanced; parked", extra={"fields": {"order_id": row.id}}
                )
                await parking.park(tx, order_id=row.id, error=parking.describe(exc), now=now)
        return len(overdue)


async def _deadline_passed(
    tx: Transaction, row: OrderRow, *, settings: Settings, now: datetime
) -> None:
    step = row.step
    event = DeadlinePassed(
        attempt=row.attempts,
        max_attempts=settings.max_step_attempts,
        park_after=settings.max_compensation_attempts,
    )
    before = saga_of(row)
    transition = advance(before, event, now)
    if not transition.applied:
        raise SagaStuck(f"the saga's state does not take a deadline at step {step}")
    moved = MovedSagas(settings)
    moved.add(row, before, transition, now=now)
    if transition.parked is None and row.step == step:
        moved.wait_longer(row, now=now)
    await moved.save(tx)


async def _move_one(
    tx: Transaction, row: OrderRow, event: Event, *, settings: Settings, now: datetime
) -> None:
    """Feed one event to the saga of `row` (locked by the caller) and save what it changed."""
    before = saga_of(row)
    transition = advance(before, event, now)
    if transition.applied:
        moved = MovedSagas(settings)
        moved.add(row, before, transition, now=now)
        await moved.save(tx)


def _visible(row: OrderRow | None, order_id: str, user_id: str, is_admin: bool) -> OrderRow:
    """`row` if the user may see it; 404 ORDER_NOT_FOUND, 403 FORBIDDEN (someone else's)."""
    if row is None:
        raise Problem(404, "ORDER_NOT_FOUND", f"no order {order_id}")
    if not is_admin and row.user_id != user_id:
        raise Problem(403, "FORBIDDEN", "not your order")
    return row


async def request_cancel(
    db: Database, *, settings: Settings, order_id: str, user_id: str, is_admin: bool, now: datetime
) -> OrderRow:
    """Start cancelling a PAID order; a cancel already running is joined, not repeated."""
    async with db.transaction() as tx:
        row = _visible(await rows.lock_order(tx, order_id), order_id, user_id, is_admin)
        tracing.link_to(row.traceparent)
        if row.operation == "CANCEL":
            return row
        if row.status != "PAID" or row.operation is not None:
            raise Problem(409, "ORDER_NOT_CANCELLABLE", f"order is {row.status}")
        await _move_one(tx, row, CancelRequested(), settings=settings, now=now)
        return row


async def request_modify(
    db: Database,
    *,
    settings: Settings,
    order_id: str,
    user_id: str,
    is_admin: bool,
    items: Sequence[tuple[str, int]],
    now: datetime,
) -> tuple[OrderRow, int]:
    """Start replacing a PAID order's lines; the order and the modify's sequence number."""
    async with db.transaction() as tx:
        row = _visible(await rows.lock_order(tx, order_id), order_id, user_id, is_admin)
        tracing.link_to(row.traceparent)
        if row.status != "PAID" or row.operation is not None:
            raise Problem(409, "ORDER_NOT_MODIFIABLE", f"order is {row.status}")
        await _move_one(tx, row, ModifyRequested(items=tuple(items)), settings=settings, now=now)
        return row, saga_of(row).modify_seq


def modify_refusal(row: OrderRow, seq: int) -> str | None:
    """Why the modify numbered `seq` left `row`'s order unchanged; None if it did not (yet)."""
    saga = saga_of(row)
    if saga.modify_seq != seq or saga.modify_outcome in (None, "APPLIED"):
        return None
    return saga.modify_outcome


async def read_order(db: Database, *, order_id: str) -> OrderRow | None:
    async with db.autocommit() as conn:
        return await rows.read_order(conn, order_id)


async def get_order(db: Database, *, order_id: str, user_id: str, is_admin: bool) -> OrderRow:
    """The order; 404 ORDER_NOT_FOUND, 403 FORBIDDEN when it is someone else's."""
    return _visible(await read_order(db, order_id=order_id), order_id, user_id, is_admin)


async def order_history(
    db: Database, *, order_id: str, user_id: str, is_admin: bool
) -> tuple[OrderRow, list[HistoryEntry]]:
    """The order and its history, oldest first; 404 ORDER_NOT_FOUND, 403 FORBIDDEN."""
    async with db.autocommit() as conn:
        row = _visible(await rows.read_order(conn, order_id), order_id, user_id, is_admin)
        return row, await rows.history_of(conn, order_id)


async def list_orders(
    db: Database, *, user_id: str, limit: int, cursor: str | None
) -> tuple[list[OrderRow], str | None]:
    """A page of the user's orders, newest first (ties by id), and the next page's cursor."""
    async with db.autocommit() as conn:
        return await rows.orders_of(conn, user_id=user_id, limit=limit, cursor=cursor)
