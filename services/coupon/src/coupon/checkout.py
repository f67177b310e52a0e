"""The order saga's coupon use: reserve, reprice and release, each answered once per operation.

Every outcome is stored in `coupon_operations` by operation id, so a re-sent command repeats
its reply and changes nothing.
"""

from datetime import datetime

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.coupon import (
    CouponReleased,
    CouponRepriced,
    CouponRepricingFailed,
    CouponReservationFailed,
    CouponReserved,
    ReleaseCoupon,
    RepriceCoupon,
    ReserveCoupon,
)
from coupon import domain
from coupon.models import Coupon, CouponOperation, UserCoupon
from shopkit.outbox import add_message


async def reserve(session: AsyncSession, *, command: ReserveCoupon, now: datetime) -> None:
    """Use the coupon on the order, or refuse it with nothing changed."""
    op = await session.get(CouponOperation, command.operation_id)
    if op is None:
        op = await _reserve_once(session, command=command, now=now)
        session.add(op)
    if op.outcome == "RESERVED":
        reply: CouponReserved | CouponReservationFailed = CouponReserved(
            order_id=command.order_id,
            operation_id=command.operation_id,
            user_coupon_id=command.user_coupon_id,
            discount=op.discount,
        )
    else:
        reply = CouponReservationFailed(
            order_id=command.order_id,
            operation_id=command.operation_id,
            user_coupon_id=command.user_coupon_id,
            reason="COUPON_NOT_USABLE",
            detail=op.detail or "not usable",
        )
    await add_message(session, reply)


async def _reserve_once(
    session: AsyncSession, *, command: ReserveCoupon, now: datetime
) -> CouponOperation:
    row, terms = await _holding(session, command.user_coupon_id)
    op = _operation(command, kind="RESERVE")
    if row is None or terms is None:
        op.detail = "the coupon is not this user's"
        return op
    holding = domain.Holding(row.user_id, row.status, row.expires_at, row.order_id)
    reason = domain.unusable_reason(
        holding,
        terms,
        user_id=command.user_id,
        order_id=command.order_id,
        subtotal=command.subtotal,
        now=now,
    )
    if reason is None and await _has_outcome(session, command, "VOIDED"):
        reason = "the order already gave this coupon back"
    if reason is not None:
        op.detail = reason
        return op
    if row.status != "USED":
        row.status, row.order_id, row.used_at = "USED", command.order_id, now
    op.outcome, op.discount = "RESERVED", domain.discount(terms, command.subtotal)
    return op


async def reprice(session: AsyncSession, *, command: RepriceCoupon) -> None:
    """The discount the order's USED coupon gives its new subtotal; the coupon is unchanged."""
    op = await session.get(CouponOperation, command.operation_id)
    if op is None:
        op = await _reprice_once(session, command=command)
        session.add(op)
    if op.outcome == "REPRICED":
        reply: CouponRepriced | CouponRepricingFailed = CouponRepriced(
            order_id=command.order_id,
            operation_id=command.operation_id,
            user_coupon_id=command.user_coupon_id,
            discount=op.discount,
        )
    else:
        reply = CouponRepricingFailed(
            order_id=command.order_id,
            operation_id=command.operation_id,
            user_coupon_id=command.user_coupon_id,
            reason="COUPON_NOT_USABLE",
            detail=op.detail or "not usable",
        )
    await add_message(session, reply)


async def _reprice_once(session: AsyncSession, *, command: RepriceCoupon) -> CouponOperation:
    row, terms = await _holding(session, command.user_coupon_id)
    op = _operation(command, kind="REPRICE")
    holding = domain.Holding(row.user_id, row.status, row.expires_at, row.order_id) if row else None
    reason = (
        domain.repricing_refusal(
            holding, terms, order_id=command.order_id, subtotal=command.subtotal
        )
        if terms is not None
        else "the coupon is not used by this order"
    )
    if reason is not None:
        op.detail = reason
        return op
    assert terms is not None
    op.outcome, op.discount = "REPRICED", domain.discount(terms, command.subtotal)
    return op


async def release(session: AsyncSession, *, command: ReleaseCoupon) -> None:
    """Give the order's coupon back to ISSUED; before any reserve, void that reserve instead."""
    op = await session.get(CouponOperation, command.operation_id)
    if op is None:
        row = await session.get(UserCoupon, command.user_coupon_id, with_for_update=True)
        reserved_before = await _has_outcome(session, command, "RESERVED")
        if row is not None and row.status == "USED" and row.order_id == command.order_id:
            row.status, row.order_id, row.used_at = "ISSUED", None, None
        op = _operation(command, kind="RELEASE")
        op.outcome = "RELEASED" if reserved_before else "VOIDED"
        session.add(op)
    await add_message(
        session,
        CouponReleased(
            order_id=command.order_id,
            operation_id=command.operation_id,
            user_coupon_id=command.user_coupon_id,
        ),
    )


async def _holding(
    session: AsyncSession, user_coupon_id: str
) -> tuple[UserCoupon | None, domain.Terms | None]:
    """The user coupon, locked (concurrent orders for one coupon take turns), and its terms."""
    query = (
        select(UserCoupon, Coupon)
        .join(Coupon, Coupon.id == UserCoupon.coupon_id)
        .where(UserCoupon.id == user_coupon_id)
        .with_for_update(of=UserCoupon)
    )
    found = (await session.execute(query)).first()
    if found is None:
        return None, None
    row, coupon = found
    terms = domain.Terms(coupon.discount_type, coupon.discount_value, coupon.min_order_amount)  # type: ignore[arg-type]
    return row, terms


async def _has_outcome(
    session: AsyncSession, command: ReserveCoupon | ReleaseCoupon, outcome: str
) -> bool:
    """Whether an earlier operation of this order on this coupon ended in `outcome`."""
    return bool(
        await session.scalar(
            select(
                exists().where(
                    and_(
                        CouponOperation.order_id == command.order_id,
                        CouponOperation.user_coupon_id == command.user_coupon_id,
                        CouponOperation.outcome == outcome,
                    )
                )
            )
        )
    )


def _operation(
    command: ReserveCoupon | RepriceCoupon | ReleaseCoupon, *, kind: str
) -> CouponOperation:
    return CouponOperation(
        operation_id=command.operation_id,
        order_id=command.order_id,
        user_coupon_id=command.user_coupon_id,
        kind=kind,
        outcome="FAILED",
        discount=0,
    )
