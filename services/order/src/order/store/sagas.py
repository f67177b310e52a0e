"""Saving moved sagas: each order's row, its history, its NOTIFYs and its messages.

Everything the sagas of one transaction did is written in two statements however many orders
moved: one for the rows, their history and the NOTIFYs, one (`publish`) for the messages.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from contracts import Envelope
from order import parking
from order.saga import PROVIDER_STEPS, Saga, Transition, deadline_of
from order.settings import Settings
from order.store.rows import COLUMNS, SAGA, OrderRow, saga_of
from order.views import changed_payload
from shopkit import tracing
from shopkit.db import Transaction, json_text
from shopkit.outbox import envelope, publish

# Every saga change, for the `?wait` requests of every replica (see waiting.py).
CHANGED_CHANNEL = "order_changed"
# A saga entered a provider step: the payment worker of every replica may lease it.
PROVIDER_WORK_CHANNEL = "order_provider_work"

_ROWS = (
    "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],"
    " $7::int[], $8::timestamptz[]"
)
_ROW_COLUMNS = "id, status, step, operation, saga, deadline, attempts, at"
# Orders from parallel arrays $1-$8 (id, status, step, operation, saga, deadline, attempts,
# updated at); a new one also $17-$19 (user id, correlation id, trace context).
_INSERT = (
    f"INSERT INTO orders ({COLUMNS}) SELECT u.id, u.user_id, u.status, u.step, u.operation,"
    " u.saga::jsonb, u.deadline, u.attempts, u.at, u.at, u.correlation_id, u.traceparent"
    f" FROM {_ROWS}, $17::text[], $18::text[], $19::text[])"
    f" AS u({_ROW_COLUMNS}, user_id, correlation_id, traceparent)"
)
# A saga that moves is no longer parked (a late reply or an operator's retry).
_UPDATE = (
    "UPDATE orders o SET status = u.status, step = u.step, operation = u.operation,"
    " saga = u.saga::jsonb, deadline = u.deadline, attempts = u.attempts, updated_at = u.at,"
    f" parked_at = NULL, last_error = NULL FROM {_ROWS}) AS u({_ROW_COLUMNS}) WHERE o.id = u.id"
)
# Then the history ($9-$14: order id, status, step, event, detail, at; in order) and the
# NOTIFYs ($15 channels, $16 payloads), in the same statement.
_HISTORY_AND_NOTIFY = (
    ", history AS (INSERT INTO order_history (order_id, status, step, event, detail, at)"
    " SELECT h.o, h.s, h.st, h.e, h.d, h.at FROM unnest($9::text[], $10::text[], $11::text[],"
    " $12::text[], $13::text[], $14::timestamptz[]) WITH ORDINALITY AS h(o, s, st, e, d, at, n)"
    " ORDER BY h.n) SELECT pg_notify(n.channel, n.payload)"
    " FROM unnest($15::text[], $16::text[]) AS n(channel, payload)"
)
_SAVE_NEW = f"WITH saved AS ({_INSERT}){_HISTORY_AND_NOTIFY}"
_SAVE_MOVED = f"WITH saved AS ({_UPDATE}){_HISTORY_AND_NOTIFY}"


@dataclass
class MovedSagas:
    """The sagas moved in one transaction, saved together (`save`): each order's final row, and
    every transition's history and messages in the order they happened."""

    settings: Settings
    new: bool = False  # placed in this transaction: rows to insert
    rows: dict[str, OrderRow] = field(default_factory=dict)
    sagas: dict[str, Saga] = field(default_factory=dict)
    history: list[tuple[str, str, str, str, str, datetime]] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    parked: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # id -> (why, when)
    # Orders whose payment timed out: the provider is asked again later (reconcile.py).
    checks: dict[str, datetime] = field(default_factory=dict)

    def saga_of(self, row: OrderRow) -> Saga:
        """The saga of `row` as moved so far in this transaction."""
        return self.sagas.get(row.id) or saga_of(row)

    def add(
        self,
        row: OrderRow,
        before: Saga | None,
        moved: Transition,
        *,
        now: datetime,
        correlation: str | None = None,
    ) -> None:
        """Record `moved` (the saga of `row`, `before` it moved: None when new) for `save`;
        its messages carry `correlation` and the order's trace."""
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
            self._schedule(row, saga, now=now)
        if moved.parked is not None:
            row.deadline = None  # neither scanned nor leased until an operator retries it
            self.parked[row.id] = (moved.parked, now)
        else:
            self.parked.pop(row.id, None)
        self.rows[row.id], self.sagas[row.id] = row, saga
        self.history += [(row.id, row.status, row.step, e, d, now) for e, d in moved.history]
        traceparent = tracing.within(row.traceparent, correlation) if tracing.ON else None
        self.envelopes += [
            envelope(m, correlation_id=correlation, traceparent=traceparent) for m in moved.messages
        ]

    def forget(self, order_id: str) -> None:
        """Leave this order's changes unsaved (its saga could not be advanced)."""
        self.rows.pop(order_id, None)
        self.sagas.pop(order_id, None)
        self.parked.pop(order_id, None)
        self.checks.pop(order_id, None)
        self.history = [h for h in self.history if h[0] != order_id]
        # An envelope's key is its order id: the saga's traffic is keyed by order.
        self.envelopes = [e for e in self.envelopes if e.key != order_id]

    def _schedule(self, row: OrderRow, saga: Saga, *, now: datetime) -> None:
        """A fresh deadline for a newly entered step, as the saga's table times it (provider
        steps: when the worker may take it)."""
        settings = self.settings
        timing = deadline_of(saga.step)
        row.attempts = 0 if saga.step in PROVIDER_STEPS else 1
        if timing is None:
            row.deadline = None
        elif timing == "PROVIDER":
            row.deadline = now
        elif timing == "PROVIDER_AFTER_GRACE":
            row.deadline = now + timedelta(seconds=settings.payment_void_grace_seconds)
            # The payment timed out: the provider may still approve it after the void.
            self.checks[row.id] = now + timedelta(seconds=settings.reconcile_delay_seconds)
        else:
            row.deadline = now + timedelta(seconds=settings.step_timeout_seconds)

    def wait_longer(self, row: OrderRow, *, now: datetime) -> None:
        """`row`'s step was sent again: the next reply is due later with each attempt."""
        row.attempts += 1
        row.deadline = now + timedelta(
            seconds=self.settings.step_timeout_seconds * min(row.attempts, 6)
        )

    async def save(self, tx: Transaction) -> None:
        """Write the rows, history and NOTIFYs in one statement and the messages in one more,
        inside the caller's transaction `tx`."""
        if not self.rows:
            return
        rows = list(self.rows.values())
        for row in rows:
            row.saga = SAGA.dump_python(self.sagas[row.id], mode="json")
        channels = [CHANGED_CHANNEL] * len(rows)
        payloads = [changed_payload(r, self.sagas[r.id]) for r in rows]
        if any(r.step in PROVIDER_STEPS for r in rows):
            channels.append(PROVIDER_WORK_CHANNEL)
            payloads.append("")
        args: list[Any] = [
            *([getattr(r, c) for r in rows] for c in ("id", "status", "step", "operation")),
            [json_text(r.saga) for r in rows],
            [r.deadline for r in rows],
            [r.attempts for r in rows],
            [r.updated_at for r in rows],
            *([h[i] for h in self.history] for i in range(6)),
            channels,
            payloads,
        ]
        if self.new:
            args += (
                [getattr(r, c) for r in rows] for c in ("user_id", "correlation_id", "traceparent")
            )
        await tx.execute(_SAVE_NEW if self.new else _SAVE_MOVED, *args)
        # Sagas are saved only with their rows locked (loaded FOR UPDATE, or new): for one
        # order, outbox id order is commit order.
        await publish(tx, *self.envelopes)
        # Off the happy path: statements only when a saga parked or a payment timed out.
        if self.parked:
            await parking.mark_parked(tx, self.parked)
        if self.checks:
            await tx.execute(
                "INSERT INTO payment_checks (order_id, due_at, checks)"
                " SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[])"
                " ON CONFLICT (order_id) DO NOTHING",
                list(self.checks),
                list(self.checks.values()),
                [0] * len(self.checks),
            )
