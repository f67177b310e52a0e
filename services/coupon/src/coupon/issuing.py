"""Issuing: who may ask, waiting for ISSUED, and the consumer that issues places for real.

The line itself (places, SOLD_OUT, ALREADY_ISSUED) is in line.py.
"""

import asyncio
import time
from datetime import datetime

from contracts.coupon import CouponIssued, CouponRejected, IssueCouponRequested
from coupon import domain
from coupon.issue_queue import IssueQueue, UserCouponDetail
from coupon.waiting import NOTIFY_SETTLED, settled_payload
from shopkit.db import Database, Transaction
from shopkit.errors import Problem
from shopkit.outbox import publish


async def issue_coupon(
    queue: IssueQueue,
    *,
    coupon_id: str,
    user_id: str,
    vouched: bool,
    user_wait_seconds: float,
    now: datetime,
) -> UserCouponDetail:
    """Put the user in the coupon's line as PENDING; 409 SOLD_OUT or ALREADY_ISSUED otherwise.

    A user id `vouched` for by the token's own subject exists; any other must be known.
    """
    if not vouched:
        await queue.definition(coupon_id)  # an unknown coupon is a 404 before an unknown user
        await require_known_user(queue.db, user_id=user_id, wait_seconds=user_wait_seconds)
    return await queue.take_place(coupon_id=coupon_id, user_id=user_id, now=now)


async def require_known_user(db: Database, *, user_id: str, wait_seconds: float) -> None:
    """404 USER_NOT_FOUND unless wallet announced the user, waiting briefly for the event."""
    deadline = time.monotonic() + wait_seconds
    while True:
        async with db.autocommit() as conn:
            if await conn.fetchval("SELECT 1 FROM known_users WHERE user_id = $1", user_id):
                return
        if time.monotonic() >= deadline:
            raise Problem(404, "USER_NOT_FOUND", f"no user {user_id}")
        await asyncio.sleep(0.1)


SETTLE_AHEAD = 500

_PLACE = (
    "SELECT id, coupon_id, user_id, position FROM user_coupons"
    " WHERE id = $1 AND status = 'PENDING' FOR UPDATE"
)
_BEHIND = (
    "SELECT id, coupon_id, user_id, position FROM user_coupons"
    " WHERE coupon_id = $1 AND status = 'PENDING' AND position > $2"
    " ORDER BY position LIMIT $3 FOR UPDATE"
)
# Guarded by the total: the quantity moves only while it stays within it.
_TAKE_QUANTITY = (
    "UPDATE coupons SET issued_quantity = issued_quantity + $2"
    " WHERE id = $1 AND issued_quantity + $2 <= total_quantity RETURNING valid_days"
)
_ISSUE = (
    "UPDATE user_coupons SET status = 'ISSUED', issued_at = $2, expires_at = $3"
    " WHERE id = ANY($1::varchar[])"
)


async def settle(tx: Transaction, *, request: IssueCouponRequested, now: datetime) -> None:
    """Issue a place in line for real: the quantity is taken now, guarded by the total.

    The places behind it in the same line are issued in the same transaction, in position
    order: a burst's places settle in a few transactions instead of one each, and their own
    messages, arriving next on the partition, find them ISSUED and do nothing.
    """
    row = await tx.fetchrow(_PLACE, request.user_coupon_id)
    if row is None:
        return
    places = [row]
    if row["position"] is not None:
        places += await tx.fetch(_BEHIND, row["coupon_id"], row["position"], SETTLE_AHEAD)
    valid_days = await tx.fetchval(_TAKE_QUANTITY, row["coupon_id"], len(places))
    if valid_days is None:
        places = [row]  # the guard refused the batch: settle this one place on its own
        valid_days = await tx.fetchval(_TAKE_QUANTITY, row["coupon_id"], 1)
    if valid_days is None:
        # Unreachable while the queue caps acceptance at the total; kept as the last guard.
        await tx.execute("UPDATE user_coupons SET status = 'REJECTED' WHERE id = $1", row["id"])
        rejected = CouponRejected(
            coupon_id=row["coupon_id"], user_coupon_id=row["id"], user_id=row["user_id"]
        )
        await publish(tx, rejected)
        await _notify_settled(tx, row["coupon_id"], row["position"], row["position"])
        return
    expires = domain.expires_at(now, valid_days)
    await tx.execute(_ISSUE, [place["id"] for place in places], now, expires)
    issued = [
        CouponIssued(
            coupon_id=place["coupon_id"],
            user_coupon_id=place["id"],
            user_id=place["user_id"],
            issued_at=now,
            expires_at=expires,
        )
        for place in places
    ]
    await publish(tx, *issued)  # one statement, in position order
    # Places in line are settled in position order, so every one in this span has left PENDING.
    await _notify_settled(tx, row["coupon_id"], row["position"], places[-1]["position"])


async def _notify_settled(
    tx: Transaction, coupon_id: str, first: int | None, last: int | None
) -> None:
    """Wake the `?wait=true` requests of every process waiting on these places (at commit)."""
    await tx.execute(NOTIFY_SETTLED, settled_payload(coupon_id, first, last))


async def remember_user(tx: Transaction, *, user_id: str, registered_at: datetime) -> None:
    """Record a user id announced by the wallet."""
    await tx.execute(
        "INSERT INTO known_users (user_id, registered_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        user_id,
        registered_at,
    )
