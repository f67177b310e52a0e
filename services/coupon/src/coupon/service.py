"""Coupon use cases besides the line and checkout: definitions, lists, revoke."""

import uuid
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from coupon import domain
from coupon.issue_queue import IssueQueue, UserCouponDetail
from coupon.models import Coupon, CouponLine, KnownUser, UserCoupon
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.pagination import decode_cursor, encode_cursor


async def create_coupon(
    db: Database,
    *,
    name: str,
    discount_type: domain.DiscountType,
    discount_value: int,
    total_quantity: int,
    min_order_amount: int,
    valid_days: int,
    now: datetime,
) -> Coupon:
    """Define a coupon and open its line; 422 INVALID_COUPON for inconsistent terms."""
    error = domain.terms_error(
        discount_type=discount_type,
        discount_value=discount_value,
        total_quantity=total_quantity,
        valid_days=valid_days,
    )
    if error:
        raise Problem(422, "INVALID_COUPON", error)
    coupon = Coupon(
        id=str(uuid.uuid4()),
        name=name,
        discount_type=discount_type,
        discount_value=discount_value,
        total_quantity=total_quantity,
        issued_quantity=0,
        min_order_amount=min_order_amount,
        valid_days=valid_days,
        created_at=now,
    )
    async with db.transaction() as session:
        session.add(coupon)
        await session.flush()
        session.add(CouponLine(coupon_id=coupon.id, capacity=total_quantity, accepted=0))
    return coupon


async def get_coupon(db: Database, *, coupon_id: str) -> Coupon:
    """The coupon with its current issued quantity; 404 COUPON_NOT_FOUND."""
    async with db.sessions() as session:
        coupon = await session.get(Coupon, coupon_id)
    if coupon is None:
        raise Problem(404, "COUPON_NOT_FOUND", f"no coupon {coupon_id}")
    return coupon


async def list_user_coupons(
    db: Database,
    *,
    queue: IssueQueue,
    user_id: str,
    status: str | None,
    limit: int,
    cursor: str | None,
    now: datetime,
    require_known: bool,
) -> tuple[list[UserCouponDetail], str | None]:
    """A page of the user's coupons, newest first; EXPIRED is ISSUED past its expiry."""
    after = decode_cursor(cursor, size=1)
    query = select(UserCoupon).where(UserCoupon.user_id == user_id)
    if status == "EXPIRED":
        query = query.where(UserCoupon.status == "ISSUED", UserCoupon.expires_at < now)
    elif status == "ISSUED":
        query = query.where(UserCoupon.status == "ISSUED", UserCoupon.expires_at >= now)
    elif status is not None:
        query = query.where(UserCoupon.status == status)
    if after is not None:
        query = query.where(UserCoupon.seq < int(after[0]))
    async with db.sessions() as session:
        rows = list(await session.scalars(query.order_by(UserCoupon.seq.desc()).limit(limit + 1)))
        if require_known and not rows and not await _is_known(session, user_id):
            raise Problem(404, "USER_NOT_FOUND", f"no user {user_id}")
    next_cursor = encode_cursor([rows[limit - 1].seq]) if len(rows) > limit else None
    held = [
        UserCouponDetail(row=row, definition=await queue.definition(row.coupon_id))
        for row in rows[:limit]
    ]
    return held, next_cursor


async def _is_known(session: AsyncSession, user_id: str) -> bool:
    known = select(KnownUser.user_id).where(KnownUser.user_id == user_id)
    holds = select(UserCoupon.id).where(UserCoupon.user_id == user_id)
    return bool(await session.scalar(select(exists(known) | exists(holds))))


async def get_user_coupon(
    db: Database, *, queue: IssueQueue, user_coupon_id: str
) -> UserCouponDetail:
    """One user coupon; 404 USER_COUPON_NOT_FOUND."""
    async with db.sessions() as session:
        row = await session.get(UserCoupon, user_coupon_id)
    if row is None:
        raise Problem(404, "USER_COUPON_NOT_FOUND", f"no user coupon {user_coupon_id}")
    return UserCouponDetail(row=row, definition=await queue.definition(row.coupon_id))


async def revoke(db: Database, *, queue: IssueQueue, user_coupon_id: str) -> UserCouponDetail:
    """An admin takes back an unused coupon; 409 COUPON_NOT_REVOCABLE when it is not ISSUED."""
    async with db.transaction() as session:
        row = await session.get(UserCoupon, user_coupon_id, with_for_update=True)
        if row is None:
            raise Problem(404, "USER_COUPON_NOT_FOUND", f"no user coupon {user_coupon_id}")
        if not domain.can_revoke(row.status):
            raise Problem(409, "COUPON_NOT_REVOCABLE", f"a {row.status} coupon cannot be revoked")
        row.status = "REVOKED"
    return UserCouponDetail(row=row, definition=await queue.definition(row.coupon_id))
