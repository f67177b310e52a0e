"""Order use cases. Each function owns one transaction: saga row + history + outbox commit together."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from order.models import Order, OrderHistory
from order.saga import (
    PROVIDER_STEPS,
    CancelRequested,
    DeadlinePassed,
    Event,
    ModifyRequested,
    Saga,
    Transition,
    advance,
    new_order,
)
from order.schemas import ItemOut, OrderOut
from order.settings import Settings
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.outbox import add_message
from shopkit.pagination import decode_cursor, encode_cursor

SAGA = TypeAdapter(Saga)
CHANGED_CHANNEL = "order_changed"
WORKER_CHANNEL = "order_worker"


def load(row: Order) -> Saga:
    return SAGA.validate_python(row.saga)


def order_out(row: Order) -> OrderOut:
    saga = load(row)
    return OrderOut(
        id=row.id,
        user_id=row.user_id,
        status=saga.status,
        items=[
            ItemOut(product_id=x.product_id, quantity=x.quantity, unit_price=x.unit_price)
            for x in saga.lines
        ],
        subtotal=saga.subtotal,
        discount=saga.discount,
        total=saga.total,
        coupon_id=saga.coupon_id,
        failure_code=saga.failure_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def place_order(
    session: AsyncSession,
    *,
    settings: Settings,
    user_id: str,
    items: Sequence[tuple[str, int]],
    coupon_id: str | None,
    now: datetime,
) -> OrderOut:
    """Record a PENDING order and ask the catalog for its stock, in one transaction."""
    order_id = str(uuid.uuid4())
    start = new_order(
        order_id=order_id, user_id=user_id, items=tuple(items), coupon_id=coupon_id, now=now
    )
    row = Order(
        id=order_id,
        user_id=user_id,
        status="PENDING",
        step=start.saga.step,
        saga={},
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await _save(session, row, before=None, moved=start, settings=settings, now=now)
    return order_out(row)


async def apply_event(
    session: AsyncSession, *, settings: Settings, order_id: str, event: Event, now: datetime
) -> Transition | None:
    """Feed one reply or internal event to the order's saga; None when it changed nothing."""
    row = await session.get(Order, order_id, with_for_update=True)
    if row is None:
        return None  # a reply for an order this database never had (another namespace)
    return await _apply(session, row, event, settings=settings, now=now)


async def _apply(
    session: AsyncSession, row: Order, event: Event, *, settings: Settings, now: datetime
) -> Transition | None:
    before = load(row)
    moved = advance(before, event, now)
    if not moved.applied:
        return None
    await _save(session, row, before=before, moved=moved, settings=settings, now=now)
    return moved


async def _save(
    session: AsyncSession,
    row: Order,
    *,
    before: Saga | None,
    moved: Transition,
    settings: Settings,
    now: datetime,
) -> None:
    saga = moved.saga
    row.saga = SAGA.dump_python(saga, mode="json")
    row.status, row.step, row.operation, row.updated_at = (
        saga.status,
        saga.step,
        saga.operation,
        now,
    )
    if before is None or saga.step != before.step:
        _schedule(row, saga, settings=settings, now=now)
    for event, detail in moved.history:
        session.add(
            OrderHistory(
                order_id=row.id,
                status=saga.status,
                step=saga.step,
                event=event,
                detail=detail,
                at=now,
            )
        )
    for message in moved.messages:
        await add_message(session, message)
    await session.execute(text("SELECT pg_notify(:c, :id)"), {"c": CHANGED_CHANNEL, "id": row.id})
    if saga.step in PROVIDER_STEPS:
        await session.execute(text("SELECT pg_notify(:c, '')"), {"c": WORKER_CHANNEL})


def _schedule(row: Order, saga: Saga, *, settings: Settings, now: datetime) -> None:
    """A fresh deadline for a newly entered step (provider steps: when the worker may take it)."""
    row.attempts = 0 if saga.step in PROVIDER_STEPS else 1
    if saga.step == "DONE":
        row.deadline = None
    elif saga.step == "VOIDING_PAYMENT":
        # Look for a late payment only after the provider could have recorded it.
        row.deadline = now + timedelta(seconds=settings.payment_void_grace_seconds)
    elif saga.step in PROVIDER_STEPS:
        row.deadline = now
    else:
        row.deadline = now + timedelta(seconds=settings.step_timeout_seconds)


async def run_deadlines(
    db: Database, *, settings: Settings, now: datetime, limit: int = 100
) -> int:
    """Re-send (or give up on) every step whose reply is overdue; the number handled."""
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(Order)
                .where(
                    Order.step != "DONE",
                    Order.step.not_in(PROVIDER_STEPS),
                    Order.deadline <= now,
                )
                .order_by(Order.deadline)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
        handled = 0
        for row in rows:
            step = row.step
            event = DeadlinePassed(attempt=row.attempts, max_attempts=settings.max_step_attempts)
            await _apply(session, row, event, settings=settings, now=now)
            if row.step == step:
                row.attempts += 1
                backoff = settings.step_timeout_seconds * min(row.attempts, 6)
                row.deadline = now + timedelta(seconds=backoff)
            handled += 1
        return handled


async def claim_provider_work(
    db: Database, *, lease_seconds: float, now: datetime, limit: int
) -> list[tuple[str, str, Saga, int]]:
    """Lease sagas waiting on the payment provider: (order id, step, saga, attempt)."""
    async with db.transaction() as session:
        ids = (
            select(Order.id)
            .where(Order.step.in_(PROVIDER_STEPS), Order.deadline <= now)
            .order_by(Order.deadline)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        rows = await session.execute(
            update(Order)
            .where(Order.id.in_(ids))
            .values(deadline=now + timedelta(seconds=lease_seconds), attempts=Order.attempts + 1)
            .returning(Order.id, Order.step, Order.saga, Order.attempts)
        )
        return [(r.id, r.step, SAGA.validate_python(r.saga), r.attempts) for r in rows]


async def retry_provider_later(db: Database, *, order_id: str, step: str, at: datetime) -> None:
    """Give a leased provider step back to the worker, to be tried again at `at`."""
    async with db.transaction() as session:
        await session.execute(
            update(Order).where(Order.id == order_id, Order.step == step).values(deadline=at)
        )


async def get_order(db: Database, *, order_id: str, user_id: str, is_admin: bool) -> Order:
    """The order; 404 ORDER_NOT_FOUND, 403 FORBIDDEN when it is someone else's."""
    async with db.sessions() as session:
        row = await session.get(Order, order_id)
    if row is None:
        raise Problem(404, "ORDER_NOT_FOUND", f"no order {order_id}")
    if not is_admin and row.user_id != user_id:
        raise Problem(403, "FORBIDDEN", "not your order")
    return row


async def history(db: Database, *, order_id: str) -> list[OrderHistory]:
    """The order's history, oldest first."""
    async with db.sessions() as session:
        found = await session.execute(
            select(OrderHistory).where(OrderHistory.order_id == order_id).order_by(OrderHistory.seq)
        )
        return list(found.scalars())


async def list_orders(
    db: Database, *, user_id: str, limit: int, cursor: str | None
) -> tuple[list[Order], str | None]:
    """A page of the user's orders, newest first (ties by id)."""
    after = decode_cursor(cursor, size=2)
    query = select(Order).where(Order.user_id == user_id)
    if after is not None:
        try:
            at = datetime.fromisoformat(str(after[0]))
        except ValueError as exc:
            raise Problem(422, "INVALID_CURSOR", "cursor is not valid") from exc
        query = query.where(
            (Order.created_at < at) | ((Order.created_at == at) & (Order.id < str(after[1])))
        )
    async with db.sessions() as session:
        rows = list(
            (
                await session.execute(
                    query.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit + 1)
                )
            ).scalars()
        )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.created_at.isoformat(), last.id])
    return rows[:limit], next_cursor


async def _locked(session: AsyncSession, order_id: str, user_id: str, is_admin: bool) -> Order:
    row = await session.get(Order, order_id, with_for_update=True)
    if row is None:
        raise Problem(404, "ORDER_NOT_FOUND", f"no order {order_id}")
    if not is_admin and row.user_id != user_id:
        raise Problem(403, "FORBIDDEN", "not your order")
    return row


async def request_cancel(
    db: Database, *, settings: Settings, order_id: str, user_id: str, is_admin: bool, now: datetime
) -> Order:
    """Start cancelling a PAID order; a cancel already running is joined, not repeated."""
    async with db.transaction() as session:
        row = await _locked(session, order_id, user_id, is_admin)
        if row.operation == "CANCEL":
            return row
        if row.status != "PAID" or row.operation is not None:
            raise Problem(409, "ORDER_NOT_CANCELLABLE", f"order is {row.status}")
        await _apply(session, row, CancelRequested(), settings=settings, now=now)
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
) -> tuple[Order, int]:
    """Start replacing a PAID order's lines; the modify's sequence number."""
    async with db.transaction() as session:
        row = await _locked(session, order_id, user_id, is_admin)
        if row.status != "PAID" or row.operation is not None:
            raise Problem(409, "ORDER_NOT_MODIFIABLE", f"order is {row.status}")
        await _apply(session, row, ModifyRequested(items=tuple(items)), settings=settings, now=now)
        return row, load(row).modify_seq


async def read_order(db: Database, *, order_id: str) -> Order | None:
    async with db.sessions() as session:
        return await session.get(Order, order_id)


def saga_json(saga: Saga) -> dict[str, Any]:
    return dict(SAGA.dump_python(saga, mode="json"))
