"""Issuing: who may ask, waiting for ISSUED, and the consumer that issues places for real.

The line itself (places, SOLD_OUT, ALREADY_ISSUED) is in line.py.
"""

import asyncio
import time
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.coupon import CouponIssued, CouponRejected, IssueCouponRequested
from coupon import domain
from coupon.issue_queue import IssueQueue, UserCouponDetail
from coupon.models import Coupon, KnownUser, UserCoupon
from coupon.waiting import NOTIFY_SETTLED, settled_payload
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.outbox import add_message


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
        async with db.sessions() as session:
            if await session.get(KnownUser, user_id, populate_existing=True) is not None:
                return
        if time.monotonic() >= deadline:
            raise Problem(404, "USER_NOT_FOUND", f"no user {user_id}")
        await asyncio.sleep(0.1)


SETTLE_AHEAD = 500


async def settle(session: AsyncSession, *, request: IssueCouponRequested, now: datetime) -> None:
    """Issue a place in line for real: the quantity is taken now, guarded by the total.

    The places behind it in the same line are issued in the same transaction, in position
    order: a burst's places settle in a few transactions instead of one each, and their own
    messages, arriving next on the partition, find them ISSUED and do nothing.
    """
    row = await session.get(UserCoupon, request.user_coupon_id, with_for_update=True)
    if row is None or row.status != "PENDING":
        return
    places = [row]
    if row.position is not None:
        behind = await session.scalars(
            select(UserCoupon)
            .where(
                UserCoupon.coupon_id == row.coupon_id,
                UserCoupon.status == "PENDING",
                UserCoupon.position > row.position,
            )
            .order_by(UserCoupon.position)
            .limit(SETTLE_AHEAD)
            .with_for_update()
        )
        places += list(behind)
    valid_days = await _take_quantity(session, row.coupon_id, len(places))
    if valid_days is None:
        places = [row]  # the guard refused the batch: settle this one place on its own
        valid_days = await _take_quantity(session, row.coupon_id, 1)
    if valid_days is None:
        # Unreachable while the line caps acceptance at the total; kept as the last guard.
        row.status = "REJECTED"
        await add_message(
            session,
            CouponRejected(coupon_id=row.coupon_id, user_coupon_id=row.id, user_id=row.user_id),
        )
        await _notify_settled(session, row.coupon_id, row.position, row.position)
        return
    # One flush at commit for every row and outbox message, in this (position) order.
    with session.no_autoflush:
        for place in places:
            place.status, place.issued_at = "ISSUED", now
            place.expires_at = domain.expires_at(now, valid_days)
            await add_message(
                session,
                CouponIssued(
                    coupon_id=place.coupon_id,
                    user_coupon_id=place.id,
                    user_id=place.user_id,
                    issued_at=now,
                    expires_at=place.expires_at,
                ),
            )
    # Places in line are settled in position order, so every one in this span has left PENDING.
    await _notify_settled(session, row.coupon_id, row.position, places[-1].position)


async def _notify_settled(
    session: AsyncSession, coupon_id: str, first: int | None, last: int | None
) -> None:
    """Wake the `?wait=true` requests of every process waiting on these places (at commit)."""
    await session.execute(NOTIFY_SETTLED, {"payload": settled_payload(coupon_id, first, last)})


async def _take_quantity(session: AsyncSession, coupon_id: str, count: int) -> int | None:
    """Add `count` to issued_quantity unless that passes the total; the coupon's valid_days."""
    return (
        await session.execute(
            update(Coupon)
            .where(
                Coupon.id == coupon_id,
                Coupon.issued_quantity + count <= Coupon.total_quantity,
            )
            .values(issued_quantity=Coupon.issued_quantity + count)
            .returning(Coupon.valid_days)
        )
    ).scalar_one_or_none()


async def remember_user(session: AsyncSession, *, user_id: str, registered_at: datetime) -> None:
    """Record a user id announced by the wallet."""
    await session.execute(
        insert(KnownUser)
        .values(user_id=user_id, registered_at=registered_at)
        .on_conflict_do_nothing()
    )
