"""Payment provider use cases: charges recorded once per key, look-ups, cancels, the behavior."""

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

import asyncpg

from payment_mock.domain import APPROVED, DECLINED, Random, answer_delay, draw, status_after_cancel
from payment_mock.models import Payment, ProviderBehavior
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.grouping import GroupCommit
from shopkit.pagination import decode_cursor, encode_cursor

BEHAVIOR_ID = 1


@dataclass(frozen=True)
class Charge:
    """A payment and how to answer for it."""

    payment: Payment
    created: bool
    delay: float


async def get_behavior(db: Database) -> ProviderBehavior:
    """The provider's current behavior (the defaults if the row is missing)."""
    async with db.autocommit() as conn:
        found = await conn.fetchrow(
            "SELECT id, decline_rate, timeout_rate, latency_ms, updated_at FROM provider_behavior"
            " WHERE id = $1",
            BEHAVIOR_ID,
        )
    if found is None:
        return ProviderBehavior(
            id=BEHAVIOR_ID, decline_rate=0.0, timeout_rate=0.0, latency_ms=0, updated_at=None
        )
    return ProviderBehavior(**found)


async def set_behavior(
    db: Database, *, decline_rate: float, timeout_rate: float, latency_ms: int, now: datetime
) -> ProviderBehavior:
    """Replace the behavior every replica uses from the next request on."""
    behavior = ProviderBehavior(
        id=BEHAVIOR_ID,
        decline_rate=decline_rate,
        timeout_rate=timeout_rate,
        latency_ms=latency_ms,
        updated_at=now,
    )
    async with db.autocommit() as conn:
        await conn.execute(
            "INSERT INTO provider_behavior (id, decline_rate, timeout_rate, latency_ms, updated_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET"
            " decline_rate = $2, timeout_rate = $3, latency_ms = $4, updated_at = $5",
            BEHAVIOR_ID,
            decline_rate,
            timeout_rate,
            latency_ms,
            now,
        )
    return behavior


@dataclass
class ChargeRequest:
    """One `POST /api/payments`, as `Payments` records it; `charge` is its answer once written."""

    key: str
    order_id: str
    amount: int
    random: Random
    hang_seconds: float
    now: datetime
    # The id its payment gets if this request records it: kept when the request is written
    # again (see GroupCommit), so it still knows the payment for its own.
    payment_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    charge: Charge | None = None
    refused: Problem | None = None


class Payments:
    """Records one payment per Idempotency-Key; a replay gets the recorded one.

    Payments requested concurrently are recorded together (`GroupCommit`): the behavior is read
    once and every payment inserted in one statement, whose `ON CONFLICT DO NOTHING` on the key
    alone decides (atomically) which call records it; replays then read theirs. Each statement
    stands alone (autocommit): a transaction around them would only add BEGIN and COMMIT.
    Under no load a group is one payment: two statements."""

    def __init__(self, db: Database) -> None:
        self._group: GroupCommit[ChargeRequest] = GroupCommit("payments", db.autocommit, _record)

    async def create(
        self,
        *,
        key: str,
        order_id: str,
        amount: int,
        random: Random,
        hang_seconds: float,
        now: datetime,
    ) -> Charge:
        """The payment for `key` (recorded now, or before) and how to answer for it; 422
        IDEMPOTENCY_KEY_REUSED when the key was used for another order or amount."""
        request = ChargeRequest(key, order_id, amount, random, hang_seconds, now)
        await self._group.submit(request)
        if request.refused is not None:
            raise request.refused
        assert request.charge is not None
        return request.charge


async def _record(conn: asyncpg.Connection, requests: list[ChargeRequest]) -> None:
    behavior = await conn.fetchrow(
        "SELECT decline_rate, timeout_rate, latency_ms FROM provider_behavior WHERE id = $1",
        BEHAVIOR_ID,
    )
    decline_rate = behavior["decline_rate"] if behavior else 0.0
    timeout_rate = behavior["timeout_rate"] if behavior else 0.0
    latency_ms = behavior["latency_ms"] if behavior else 0
    rows = []
    for r in requests:
        outcome = draw(decline_rate=decline_rate, timeout_rate=timeout_rate, random=r.random)
        rows.append(
            Payment(
                id=r.payment_id,
                idempotency_key=r.key,
                order_id=r.order_id,
                amount=r.amount,
                status=DECLINED if outcome.declined else APPROVED,
                created_at=r.now,
            )
        )
        delay = answer_delay(
            latency_ms=latency_ms, times_out=outcome.times_out, hang_seconds=r.hang_seconds
        )
        r.charge, r.refused = Charge(payment=rows[-1], created=True, delay=delay), None
    # A concurrent insert with the same key waits for the first to commit, then does nothing;
    # so does a second request for one key in this very group.
    inserted = {
        row[0]
        for row in await conn.fetch(
            "INSERT INTO payments (id, idempotency_key, order_id, amount, status, created_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],"
            " $5::text[], $6::timestamptz[]) ON CONFLICT (idempotency_key) DO NOTHING"
            " RETURNING id",
            *([getattr(p, c) for p in rows] for c in ("id", "idempotency_key", "order_id")),
            [p.amount for p in rows],
            [p.status for p in rows],
            [p.created_at for p in rows],
        )
    }
    replays = [r for r in requests if r.payment_id not in inserted]
    if not replays:
        return
    found = {
        row["idempotency_key"]: Payment(**row)
        for row in await conn.fetch(
            f"SELECT {_PAYMENT} FROM payments WHERE idempotency_key = ANY($1::text[])",
            [r.key for r in replays],
        )
    }
    for r in replays:
        assert r.charge is not None
        payment = found[r.key]
        if (payment.order_id, payment.amount) != (r.order_id, r.amount):
            r.refused = Problem(
                422, "IDEMPOTENCY_KEY_REUSED", "this key was used with another order or amount"
            )
        # Recorded by this request when it was written before in a group that failed later.
        r.charge = replace(r.charge, payment=payment, created=payment.id == r.payment_id)


_PAYMENT = "seq, id, idempotency_key, order_id, amount, status, created_at, cancelled_at"


async def get_payment(db: Database, *, payment_id: str) -> Payment:
    """One payment; 404 PAYMENT_NOT_FOUND."""
    async with db.autocommit() as conn:
        found = await conn.fetchrow(f"SELECT {_PAYMENT} FROM payments WHERE id = $1", payment_id)
    if found is None:
        raise _not_found(payment_id)
    return Payment(**found)


async def cancel_payment(db: Database, *, payment_id: str, now: datetime) -> Payment:
    """Cancel an approved payment; cancelling again changes nothing; a declined one -> 409."""
    async with db.transaction() as tx:
        found = await tx.fetchrow(
            f"SELECT {_PAYMENT} FROM payments WHERE id = $1 FOR UPDATE", payment_id
        )
        if found is None:
            raise _not_found(payment_id)
        payment = Payment(**found)
        status = status_after_cancel(payment.status)
        if status is None:
            raise Problem(
                409, "PAYMENT_NOT_CANCELLABLE", f"payment {payment_id} is {payment.status}"
            )
        if payment.status != status:
            payment.status, payment.cancelled_at = status, now
            await tx.execute(
                "UPDATE payments SET status = $2, cancelled_at = $3 WHERE id = $1",
                payment_id,
                status,
                now,
            )
    return payment


async def list_payments(
    db: Database, *, order_id: str | None, limit: int, cursor: str | None
) -> tuple[list[Payment], str | None]:
    """A page of payments (of one order, if given), newest first."""
    after = decode_cursor(cursor, size=1)
    if after is not None and not isinstance(after[0], int):
        raise Problem(422, "INVALID_CURSOR", "cursor is not valid")
    query, arguments = f"SELECT {_PAYMENT} FROM payments WHERE TRUE", list[object]()
    if order_id is not None:
        arguments.append(order_id)
        query += f" AND order_id = ${len(arguments)}"
    if after is not None:
        arguments.append(after[0])
        query += f" AND seq < ${len(arguments)}"
    arguments.append(limit + 1)
    async with db.autocommit() as conn:
        rows = await conn.fetch(f"{query} ORDER BY seq DESC LIMIT ${len(arguments)}", *arguments)
    payments = [Payment(**row) for row in rows]
    next_cursor = encode_cursor([payments[limit - 1].seq]) if len(payments) > limit else None
    return payments[:limit], next_cursor


def _not_found(payment_id: str) -> Problem:
    return Problem(404, "PAYMENT_NOT_FOUND", f"no payment {payment_id}")
