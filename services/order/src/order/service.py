"""Order use cases. Each function owns one transaction: saga row + history + outbox commit together.

The saga's reads and writes are plain asyncpg statements on `OrderRow`s, on the connection of
the caller's transaction (`Database.raw_transaction`, or a session's through `driver`): they run
several times per order, and the ORM's unit of work and SQLAlchemy's per-statement and
per-transaction cost were most of the service's CPU.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import TypeAdapter
from sqlalchemy import Table, select, update

from contracts import Envelope
from order import parking
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
from shopkit import tracing
from shopkit.db import Database, json_text
from shopkit.errors import Problem
from shopkit.faults import is_transient
from shopkit.grouping import GroupCommit
from shopkit.logs import correlation_id as current_correlation
from shopkit.outbox import NOTIFY_CHANNEL, envelope_arrays, envelope_for, outbox_insert
from shopkit.pagination import decode_cursor, encode_cursor

log = logging.getLogger("order.service")
SAGA = TypeAdapter(Saga)
CHANGED_CHANNEL = "order_changed"
WORKER_CHANNEL = "order_worker"
ORDERS: Table = Order.__table__  # type: ignore[assignment]
HISTORY: Table = OrderHistory.__table__  # type: ignore[assignment]


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


# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; an order of 50 lines is ~4 KB.
_MAX_NOTIFY = 7900


def changed_payload(row: OrderRow, saga: Saga) -> str:
    """What a saga change NOTIFYs: `<order id> <status> <operation or -> [<order JSON>]`.

    When nothing is in flight any more (the step is DONE), the order as clients see it comes
    along if it fits: a request waiting for it then answers without reading it again (see
    waiting.py)."""
    head = f"{row.id} {row.status} {row.operation or '-'}"
    if row.step != "DONE":
        return head
    payload = f"{head} {order_out(row, saga).model_dump_json()}"
    return payload if len(payload.encode()) <= _MAX_NOTIFY else head


_COLUMNS = (
    "id, user_id, status, step, operation, saga, deadline, attempts, created_at, updated_at,"
    " correlation_id, traceparent"
)


async def _select(conn: asyncpg.Connection, order_id: str, *, lock: bool) -> OrderRow | None:
    found = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM orders WHERE id = $1{' FOR UPDATE' if lock else ''}", order_id
    )
    return None if found is None else OrderRow(**found)


def load(row: OrderRow) -> Saga:
    return SAGA.validate_python(row.saga)


def order_out(row: OrderRow, saga: Saga | None = None) -> OrderOut:
    """The order as clients see it; `saga` when the caller has it already (else `row`'s)."""
    saga = saga or load(row)
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


def _placed(
    *,
    user_id: str,
    items: Sequence[tuple[str, int]],
    coupon_id: str | None,
    now: datetime,
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
    conn: asyncpg.Connection, placed: list[tuple[OrderRow, Transition]], *, settings: Settings
) -> None:
    changes = _Changes(new=True)
    for row, start in placed:
        # Its own request's correlation id: a group is written in the first request's context.
        changes.add(
            row, None, start, settings=settings, now=row.created_at, correlation=row.correlation_id
        )
    await changes.save(conn)


async def place_order(
    conn: asyncpg.Connection,
    *,
    settings: Settings,
    user_id: str,
    items: Sequence[tuple[str, int]],
    coupon_id: str | None,
    now: datetime,
) -> OrderOut:
    """Record a PENDING order and ask the catalog for its stock, in one statement on `conn`
    (inside the caller's transaction, e.g. with its idempotency record)."""
    row, start = _placed(user_id=user_id, items=items, coupon_id=coupon_id, now=now)
    await _save_placed(conn, [(row, start)], settings=settings)
    return order_out(row)


class Placing:
    """Orders placed by concurrent requests, saved together: one statement and one commit (a
    WAL flush) for every order that arrived while the previous group was being written, not
    one each (`GroupCommit`). Under no load a group is one order."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.settings = settings
        self._group: GroupCommit[tuple[OrderRow, Transition]] = GroupCommit(
            "place", db.raw_transaction, self._write
        )

    async def place(
        self,
        *,
        user_id: str,
        items: Sequence[tuple[str, int]],
        coupon_id: str | None,
        now: datetime,
    ) -> tuple[OrderRow, Saga]:
        """Record a PENDING order and ask the catalog for its stock; once committed, its row and
        saga (`order_out` of them is the order as clients see it)."""
        row, start = _placed(user_id=user_id, items=items, coupon_id=coupon_id, now=now)
        await self._group.submit((row, start))
        return row, start.saga

    async def _write(
        self, conn: asyncpg.Connection, placed: list[tuple[OrderRow, Transition]]
    ) -> None:
        await _save_placed(conn, placed, settings=self.settings)


async def apply_events(
    conn: asyncpg.Connection,
    *,
    settings: Settings,
    events: Sequence[tuple[str, Event, str | None]],
    now: datetime,
) -> None:
    """Feed replies or internal events, each `(order id, event, correlation id)`, to their
    orders' sagas in the given order, inside the caller's transaction on `conn`.

    Set-based: the orders are locked (in id order, as every transaction here takes them) and
    read in one statement and saved in one, however many events there are. An event the saga
    does not expect changes nothing, and one for an order this database never had (another
    namespace's) is skipped."""
    found = await conn.fetch(
        f"SELECT {_COLUMNS} FROM orders WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        sorted({order_id for order_id, _, _ in events}),
    )
    rows = {r["id"]: OrderRow(**r) for r in found}
    changes = _Changes()
    broken: dict[str, str] = {}
    for order_id, event, correlation in events:
        if order_id in rows and order_id not in broken:
            try:
                changes.advance(
                    rows[order_id], event, settings=settings, now=now, correlation=correlation
                )
            except Exception as exc:  # the saga is pure: this is the row's or the code's fault
                broken[order_id] = parking.describe(exc)
                changes.forget(order_id)
    await changes.save(conn)
    for order_id, error in broken.items():
        log.error("saga cannot be advanced; parked", extra={"fields": {"order_id": order_id}})
        await parking.park(conn, order_id=order_id, error=error, now=now)


async def _apply(
    conn: asyncpg.Connection, row: OrderRow, event: Event, *, settings: Settings, now: datetime
) -> Transition | None:
    """Feed one event to the saga of `row` (locked by the caller) and save what it changed."""
    changes = _Changes()
    moved = changes.advance(row, event, settings=settings, now=now)
    await changes.save(conn)
    return moved


@dataclass
class _Changes:
    """Sagas moved in one transaction, saved together in one statement (`save`): each order's
    final row, and every transition's history and messages in the order they happened."""

    new: bool = False
    rows: dict[str, OrderRow] = field(default_factory=dict)
    sagas: dict[str, Saga] = field(default_factory=dict)
    history: list[tuple[str, str, str, str, str, datetime]] = field(default_factory=list)
    envelopes: list[tuple[str, Envelope]] = field(default_factory=list)
    parked: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # id -> (why, when)
    # Orders whose payment timed out: the provider is asked again later (reconcile.py).
    checks: dict[str, datetime] = field(default_factory=dict)

    def advance(
        self,
        row: OrderRow,
        event: Event,
        *,
        settings: Settings,
        now: datetime,
        correlation: str | None = None,
    ) -> Transition | None:
        """Apply `event` to the saga of `row` as changed so far; None when it changed nothing."""
        before = self.sagas.get(row.id) or load(row)
        moved = advance(before, event, now)
        if not moved.applied:
            return None
        self.add(row, before, moved, settings=settings, now=now, correlation=correlation)
        return moved

    def add(
        self,
        row: OrderRow,
        before: Saga | None,
        moved: Transition,
        *,
        settings: Settings,
        now: datetime,
        correlation: str | None = None,
    ) -> None:
        saga = moved.saga
        row.status, row.step, row.operation, row.updated_at = (
            saga.status,
            saga.step,
            saga.operation,
            now,
        )
        # No deadline on a step in flight: it was parked and has just moved on (a late reply).
        unparked = row.deadline is None and saga.step != "DONE"
        if before is None or saga.step != before.step or unparked:
            _schedule(row, saga, settings=settings, now=now)
            if saga.step == "VOIDING_PAYMENT":
                self.checks[row.id] = now + timedelta(seconds=settings.reconcile_delay_seconds)
        if moved.parked is not None:
            row.deadline = None  # neither scanned nor leased until an operator retries it
            self.parked[row.id] = (moved.parked, now)
        else:
            self.parked.pop(row.id, None)
        self.rows[row.id], self.sagas[row.id] = row, saga
        self.history += [(row.id, row.status, row.step, e, d, now) for e, d in moved.history]
        traceparent = tracing.within(row.traceparent, correlation) if tracing.ON else None
        self.envelopes += [
            (m.TOPIC.name, envelope_for(m, correlation_id=correlation, traceparent=traceparent))
            for m in moved.messages
        ]

    def forget(self, order_id: str) -> None:
        """Leave this order's changes unsaved (its saga could not be advanced)."""
        self.rows.pop(order_id, None)
        self.sagas.pop(order_id, None)
        self.parked.pop(order_id, None)
        self.checks.pop(order_id, None)
        self.history = [h for h in self.history if h[0] != order_id]
        # An envelope's key is its order id: the saga's traffic is keyed by order.
        self.envelopes = [(t, e) for t, e in self.envelopes if e.key != order_id]

    async def save(self, conn: asyncpg.Connection) -> None:
        """Write the rows, history, messages and NOTIFYs in one statement (five round trips or
        more per order before), straight through asyncpg."""
        if not self.rows:
            return
        rows = list(self.rows.values())
        for row in rows:
            row.saga = SAGA.dump_python(self.sagas[row.id], mode="json")
        args: list[Any] = [
            *([getattr(r, c) for r in rows] for c in ("id", "status", "step", "operation")),
            [json_text(r.saga) for r in rows],
            [r.deadline for r in rows],
            [r.attempts for r in rows],
            [r.updated_at for r in rows],
            *([h[i] for h in self.history] for i in range(6)),
            [changed_payload(r, self.sagas[r.id]) for r in rows],
        ]
        if self.new:
            args += [
                [getattr(r, c) for r in rows] for c in ("user_id", "correlation_id", "traceparent")
            ]
        if self.envelopes:
            args += envelope_arrays(self.envelopes)
        wake = any(r.step in PROVIDER_STEPS for r in rows)
        await conn.execute(_SAVE[self.new, wake, bool(self.envelopes)], *args)
        # Off the happy path: statements only when a saga parked or a payment timed out.
        if self.parked:
            await parking.mark_parked(conn, self.parked)
        if self.checks:
            await conn.execute(
                "INSERT INTO payment_checks (order_id, due_at, checks)"
                " SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[])"
                " ON CONFLICT (order_id) DO NOTHING",
                list(self.checks),
                list(self.checks.values()),
                [0] * len(self.checks),
            )


def _save_statement(*, new: bool, wake_worker: bool, queue: bool) -> str:
    """Write orders from parallel arrays ($1-$8: id, status, step, operation, saga, deadline,
    attempts, updated at; a new row also its user id, correlation id and trace context, $16-$18,
    and is created at its update time),
    append their history ($9-$14: order id, status, step, event, detail, at, in order), NOTIFY
    each order's change ($15) and queue the messages in the outbox (five arrays after the
    rest), in one statement."""
    rows = (
        "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::timestamptz[], $7::int[], $8::timestamptz[]{}) AS u(id, status, step, operation,"
        " saga, deadline, attempts, at{})"
    )
    write = (
        f"INSERT INTO orders ({_COLUMNS}) SELECT u.id, u.user_id, u.status, u.step, u.operation,"
        f" u.saga::jsonb, u.deadline, u.attempts, u.at, u.at, u.correlation_id, u.traceparent"
        f" FROM {rows.format(', $16::text[], $17::text[], $18::text[]', ', user_id, correlation_id, traceparent')}"
        if new
        # A saga that moves is no longer parked (a late reply or an operator's retry).
        else "UPDATE orders o SET status = u.status, step = u.step, operation = u.operation,"
        " saga = u.saga::jsonb, deadline = u.deadline, attempts = u.attempts, updated_at = u.at,"
        " parked_at = NULL, last_error = NULL"
        f" FROM {rows.format('', '')} WHERE o.id = u.id"
    )
    notify = f"SELECT pg_notify('{CHANGED_CHANNEL}', p) FROM unnest($15::text[]) AS p"
    if wake_worker:
        notify += f" UNION ALL SELECT pg_notify('{WORKER_CHANNEL}', '')"
    queued = ""
    if queue:
        # Sagas are saved only with their rows locked (loaded FOR UPDATE, or new): for one
        # order, outbox id order is commit order.
        queued = f", queued AS ({outbox_insert(19 if new else 16)})"
        notify += f" UNION ALL SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
    return (
        f"WITH saved AS ({write}), history AS ("
        " INSERT INTO order_history (order_id, status, step, event, detail, at)"
        " SELECT h.o, h.s, h.st, h.e, h.d, h.at FROM unnest($9::text[], $10::text[],"
        " $11::text[], $12::text[], $13::text[], $14::timestamptz[])"
        " WITH ORDINALITY AS h(o, s, st, e, d, at, n)"
        f" ORDER BY h.n){queued} {notify}"
    )


_SAVE = {
    (new, wake, queue): _save_statement(new=new, wake_worker=wake, queue=queue)
    for new in (True, False)
    for wake in (True, False)
    for queue in (True, False)
}


def _schedule(row: OrderRow, saga: Saga, *, settings: Settings, now: datetime) -> None:
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


_OVERDUE = (
    f"SELECT {_COLUMNS} FROM orders WHERE step <> 'DONE' AND step <> ALL($1::text[])"
    " AND deadline <= $2 ORDER BY deadline LIMIT $3 FOR UPDATE SKIP LOCKED"
)


class SagaStuck(Exception):
    """A saga row that no deadline can move (its state and its step disagree)."""


async def run_deadlines(
    db: Database, *, settings: Settings, now: datetime, limit: int = 100
) -> int:
    """Re-send (or give up on, or park) every step whose reply is overdue; the number handled.

    Each order runs in a savepoint of its own: one whose saga cannot be loaded or advanced is
    parked with its error and the others go on. A transient failure (the database away) ends
    the scan; the next one does it again."""
    async with db.raw_transaction() as conn:
        found = await conn.fetch(_OVERDUE, list(PROVIDER_STEPS), now, limit)
        for record in found:
            row = OrderRow(**record)
            try:
                async with conn.transaction():
                    await _deadline_passed(conn, row, settings=settings, now=now)
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.exception(
                    "saga cannot be advanced; parked", extra={"fields": {"order_id": row.id}}
                )
                await parking.park(conn, order_id=row.id, error=parking.describe(exc), now=now)
        return len(found)


async def _deadline_passed(
    conn: asyncpg.Connection, row: OrderRow, *, settings: Settings, now: datetime
) -> None:
    step = row.step
    event = DeadlinePassed(
        attempt=row.attempts,
        max_attempts=settings.max_step_attempts,
        park_after=settings.max_compensation_attempts,
    )
    changes = _Changes()
    moved = changes.advance(row, event, settings=settings, now=now)
    if moved is None:
        raise SagaStuck(f"the saga's state does not take a deadline at step {step}")
    if moved.parked is None and row.step == step:  # re-sent: wait longer for the next reply
        row.attempts += 1
        backoff = settings.step_timeout_seconds * min(row.attempts, 6)
        row.deadline = now + timedelta(seconds=backoff)
    await changes.save(conn)


async def claim_provider_work(
    db: Database, *, lease_seconds: float, now: datetime, limit: int
) -> list[tuple[str, str, Saga, int, Trail]]:
    """Lease sagas waiting on the payment provider: (order id, step, saga, attempt, trail).

    One statement, atomic on its own: no transaction around it (BEGIN and COMMIT were two of
    its three round trips). `step <> 'DONE'` is implied by the steps but written out: it is the
    deadline index's condition, and only with it can a plan prepared once (for any steps) use
    that index. Without it PostgreSQL planned the statement anew on every call (~0.3 ms)."""
    async with db.autocommit() as conn:
        rows = await conn.fetch(
            "UPDATE orders SET deadline = $1, attempts = attempts + 1 WHERE id IN ("
            " SELECT id FROM orders WHERE step = ANY($2::text[]) AND step <> 'DONE'"
            " AND deadline <= $3"
            " ORDER BY deadline LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, step, saga, attempts, correlation_id, traceparent",
            now + timedelta(seconds=lease_seconds),
            list(PROVIDER_STEPS),
            now,
            limit,
        )
        claimed = []
        for r in rows:
            try:  # a saga that cannot be loaded, or is not at its row's step, holds no one back
                saga = SAGA.validate_python(r["saga"])
                if saga.step != r["step"]:
                    raise SagaStuck(f"the saga is at {saga.step}, its row at {r['step']}")
            except (ValueError, SagaStuck) as exc:
                log.error("saga cannot be driven; parked", extra={"fields": {"order_id": r["id"]}})
                await parking.park(conn, order_id=r["id"], error=parking.describe(exc), now=now)
            else:
                trail = Trail(r["correlation_id"], r["traceparent"])
                claimed.append((r["id"], r["step"], saga, r["attempts"], trail))
        return claimed


async def retry_provider_later(db: Database, *, order_id: str, step: str, at: datetime) -> None:
    """Give a leased provider step back to the worker, to be tried again at `at`."""
    async with db.transaction() as session:
        await session.execute(
            update(ORDERS).where(ORDERS.c.id == order_id, ORDERS.c.step == step).values(deadline=at)
        )


async def get_order(db: Database, *, order_id: str, user_id: str, is_admin: bool) -> OrderRow:
    """The order; 404 ORDER_NOT_FOUND, 403 FORBIDDEN when it is someone else's."""
    row = await read_order(db, order_id=order_id)
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
) -> tuple[list[OrderRow], str | None]:
    """A page of the user's orders, newest first (ties by id)."""
    after = decode_cursor(cursor, size=2)
    columns = [ORDERS.c[name] for name in _COLUMNS.split(", ")]  # an OrderRow's, no more
    query = select(*columns).where(ORDERS.c.user_id == user_id)
    if after is not None:
        try:
            at = datetime.fromisoformat(str(after[0]))
        except ValueError as exc:
            raise Problem(422, "INVALID_CURSOR", "cursor is not valid") from exc
        query = query.where(
            (ORDERS.c.created_at < at)
            | ((ORDERS.c.created_at == at) & (ORDERS.c.id < str(after[1])))
        )
    async with db.sessions() as session:
        found = await session.execute(
            query.order_by(ORDERS.c.created_at.desc(), ORDERS.c.id.desc()).limit(limit + 1)
        )
        rows = [OrderRow(**r._mapping) for r in found]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.created_at.isoformat(), last.id])
    return rows[:limit], next_cursor


async def _locked(
    conn: asyncpg.Connection, order_id: str, user_id: str, is_admin: bool
) -> OrderRow:
    row = await _select(conn, order_id, lock=True)
    if row is None:
        raise Problem(404, "ORDER_NOT_FOUND", f"no order {order_id}")
    if not is_admin and row.user_id != user_id:
        raise Problem(403, "FORBIDDEN", "not your order")
    return row


async def request_cancel(
    db: Database, *, settings: Settings, order_id: str, user_id: str, is_admin: bool, now: datetime
) -> OrderRow:
    """Start cancelling a PAID order; a cancel already running is joined, not repeated."""
    async with db.raw_transaction() as conn:
        row = await _locked(conn, order_id, user_id, is_admin)
        tracing.link_to(row.traceparent)
        if row.operation == "CANCEL":
            return row
        if row.status != "PAID" or row.operation is not None:
            raise Problem(409, "ORDER_NOT_CANCELLABLE", f"order is {row.status}")
        await _apply(conn, row, CancelRequested(), settings=settings, now=now)
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
    """Start replacing a PAID order's lines; the modify's sequence number."""
    async with db.raw_transaction() as conn:
        row = await _locked(conn, order_id, user_id, is_admin)
        tracing.link_to(row.traceparent)
        if row.status != "PAID" or row.operation is not None:
            raise Problem(409, "ORDER_NOT_MODIFIABLE", f"order is {row.status}")
        await _apply(conn, row, ModifyRequested(items=tuple(items)), settings=settings, now=now)
        return row, load(row).modify_seq


async def read_order(db: Database, *, order_id: str) -> OrderRow | None:
    async with db.autocommit() as conn:
        found = await conn.fetchrow(f"SELECT {_COLUMNS} FROM orders WHERE id = $1", order_id)
    return None if found is None else OrderRow(**found)


def saga_json(saga: Saga) -> dict[str, Any]:
    return dict(SAGA.dump_python(saga, mode="json"))
