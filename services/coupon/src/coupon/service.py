"""Coupon use cases besides the issue queue and checkout: definitions, lists, revoke."""

import uuid
from datetime import datetime

from coupon import domain
from coupon.issue_queue import IssueQueue, UserCouponDetail
from coupon.models import USER_COUPON, Coupon, UserCoupon
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.pagination import decode_cursor, encode_cursor

_COUPON = (
    "SELECT id, name, discount_type, discount_value, total_quantity, issued_quantity,"
    " min_order_amount, valid_days, created_at FROM coupons WHERE id = $1"
)
_STATUS_FILTERS = {
    None: "",
    "EXPIRED": " AND status = 'ISSUED' AND expires_at < $2",
    "ISSUED": " AND status = 'ISSUED' AND expires_at >= $2",
}
_KNOWN = (
    "SELECT EXISTS (SELECT 1 FROM known_users WHERE user_id = $1)"
    " OR EXISTS (SELECT 1 FROM user_coupons WHERE user_id = $1)"
)


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
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO coupons (id, name, discount_type, discount_value, total_quantity,"
            " issued_quantity, min_order_amount, valid_days, created_at)"
            " VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)",
            coupon.id,
            name,
            discount_type,
            discount_value,
            total_quantity,
            min_order_amount,
            valid_days,
            now,
        )
        await tx.execute(
            "INSERT INTO coupon_lines (coupon_id, capacity, accepted) VALUES ($1, $2, 0)",
            coupon.id,
            total_quantity,
        )
    return coupon


async def get_coupon(db: Database, *, coupon_id: str) -> Coupon:
    """The coupon with its current issued quantity; 404 COUPON_NOT_FOUND."""
    async with db.autocommit() as conn:
        found = await conn.fetchrow(_COUPON, coupon_id)
    if found is None:
        raise Problem(404, "COUPON_NOT_FOUND", f"no coupon {coupon_id}")
    return Coupon(**found)


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
    where, args = "user_id = $1", list[object]([user_id])
    if status in _STATUS_FILTERS:
        where += _STATUS_FILTERS[status]
        args += [now] if status else []
    else:
        where += f" AND status = ${len(args) + 1}"
        args.append(status)
    if after is not None:
        where += f" AND seq < ${len(args) + 1}"
        args.append(int(after[0]))
    query = USER_COUPON.replace("WHERE id = $1", f"WHERE {where}")
    async with db.autocommit() as conn:
        found = await conn.fetch(f"{query} ORDER BY seq DESC LIMIT {int(limit) + 1}", *args)
        if require_known and not found and not await conn.fetchval(_KNOWN, user_id):
            raise Problem(404, "USER_NOT_FOUND", f"no user {user_id}")
    rows = [UserCoupon(**row) for row in found]
    next_cursor = encode_cursor([rows[limit - 1].seq]) if len(rows) > limit else None
    held = [
        UserCouponDetail(row=row, definition=await queue.definition(row.coupon_id))
        for row in rows[:limit]
    ]
    return held, next_cursor


async def get_user_coupon(
    db: Database, *, queue: IssueQueue, user_coupon_id: str
) -> UserCouponDetail:
    """One user coupon; 404 USER_COUPON_NOT_FOUND."""
    async with db.autocommit() as conn:
        found = await conn.fetchrow(USER_COUPON, user_coupon_id)
    if found is None:
        raise Problem(404, "USER_COUPON_NOT_FOUND", f"no user coupon {user_coupon_id}")
    row = UserCoupon(**found)
    return UserCouponDetail(row=row, definition=await queue.definition(row.coupon_id))


async def revoke(db: Database, *, queue: IssueQueue, user_coupon_id: str) -> UserCouponDetail:
    """An admin takes back an unused coupon; 409 COUPON_NOT_REVOCABLE when it is not ISSUED."""
    async with db.transaction() as tx:
        found = await tx.fetchrow(f"{USER_COUPON} FOR UPDATE", user_coupon_id)
        if found is None:
            raise Problem(404, "USER_COUPON_NOT_FOUND", f"no user coupon {user_coupon_id}")
        row = UserCoupon(**found)
        if not domain.can_revoke(row.status):
            raise Problem(409, "COUPON_NOT_REVOCABLE", f"a {row.status} coupon cannot be revoked")
        await tx.execute("UPDATE user_coupons SET status = 'REVOKED' WHERE id = $1", row.id)
        row.status = "REVOKED"
    return UserCouponDetail(row=row, definition=await queue.definition(row.coupon_id))
