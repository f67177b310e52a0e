"""The order saga's coupon use: reserve, reprice and release, each answered once per operation.

Every outcome is stored in `coupon_operations` by operation id, so a re-sent command repeats
its reply and changes nothing.
"""

from datetime import datetime

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
from shopkit.db import Transaction
from shopkit.outbox import publish

Command = ReserveCoupon | RepriceCoupon | ReleaseCoupon

_OPERATION = "SELECT outcome, discount, detail FROM coupon_operations WHERE operation_id = $1"
_RECORD = (
    "INSERT INTO coupon_operations"
    " (operation_id, order_id, user_coupon_id, kind, outcome, discount, detail)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
# Locked: concurrent orders for one coupon take turns.
_HOLDING = (
    "SELECT u.user_id, u.status, u.expires_at, u.order_id,"
    " c.discount_type, c.discount_value, c.min_order_amount"
    " FROM user_coupons u JOIN coupons c ON c.id = u.coupon_id WHERE u.id = $1 FOR UPDATE OF u"
)
_HAS_OUTCOME = (
    "SELECT EXISTS (SELECT 1 FROM coupon_operations"
    " WHERE order_id = $1 AND user_coupon_id = $2 AND outcome = $3)"
)


async def reserve(tx: Transaction, *, command: ReserveCoupon, now: datetime) -> None:
    """Use the coupon on the order, or refuse it with nothing changed."""
    outcome, discount, detail = await _answered(tx, command) or await _reserve_once(
        tx, command=command, now=now
    )
    ids = _ids(command)
    if outcome == "RESERVED":
        await publish(tx, CouponReserved(**ids, discount=discount))
    else:
        await publish(tx, CouponReservationFailed(**ids, reason="COUPON_NOT_USABLE", detail=detail))


async def _reserve_once(
    tx: Transaction, *, command: ReserveCoupon, now: datetime
) -> tuple[str, int, str]:
    holding, terms = await _holding(tx, command.user_coupon_id)
    reason = (
        domain.unusable_reason(
            holding,
            terms,
            user_id=command.user_id,
            order_id=command.order_id,
            subtotal=command.subtotal,
            now=now,
        )
        if holding is not None and terms is not None
        else "the coupon is not this user's"
    )
    if reason is None and await tx.fetchval(
        _HAS_OUTCOME, command.order_id, command.user_coupon_id, "VOIDED"
    ):
        reason = "the order already gave this coupon back"
    if reason is not None:
        return await _record(tx, command, "RESERVE", "FAILED", 0, reason)
    assert holding is not None and terms is not None
    if holding.status != "USED":
        await tx.execute(
            "UPDATE user_coupons SET status = 'USED', order_id = $2, used_at = $3 WHERE id = $1",
            command.user_coupon_id,
            command.order_id,
            now,
        )
    discount = domain.discount(terms, command.subtotal)
    return await _record(tx, command, "RESERVE", "RESERVED", discount, None)


async def reprice(tx: Transaction, *, command: RepriceCoupon) -> None:
    """The discount the order's USED coupon gives its new subtotal; the coupon is unchanged."""
    outcome, discount, detail = await _answered(tx, command) or await _reprice_once(
        tx, command=command
    )
    ids = _ids(command)
    if outcome == "REPRICED":
        await publish(tx, CouponRepriced(**ids, discount=discount))
    else:
        await publish(tx, CouponRepricingFailed(**ids, reason="COUPON_NOT_USABLE", detail=detail))


async def _reprice_once(tx: Transaction, *, command: RepriceCoupon) -> tuple[str, int, str]:
    holding, terms = await _holding(tx, command.user_coupon_id)
    reason = (
        domain.repricing_refusal(
            holding, terms, order_id=command.order_id, subtotal=command.subtotal
        )
        if terms is not None
        else "the coupon is not used by this order"
    )
    if reason is not None:
        return await _record(tx, command, "REPRICE", "FAILED", 0, reason)
    assert terms is not None
    discount = domain.discount(terms, command.subtotal)
    return await _record(tx, command, "REPRICE", "REPRICED", discount, None)


async def release(tx: Transaction, *, command: ReleaseCoupon) -> None:
    """Give the order's coupon back to ISSUED; before any reserve, void that reserve instead."""
    if await _answered(tx, command) is None:
        # Locked first, so a reserve of this order in flight is seen as done or not begun.
        row = await tx.fetchrow(
            "SELECT status, order_id FROM user_coupons WHERE id = $1 FOR UPDATE",
            command.user_coupon_id,
        )
        if row is not None and row["status"] == "USED" and row["order_id"] == command.order_id:
            await tx.execute(
                "UPDATE user_coupons SET status = 'ISSUED', order_id = NULL, used_at = NULL"
                " WHERE id = $1",
                command.user_coupon_id,
            )
        reserved_before = await tx.fetchval(
            _HAS_OUTCOME, command.order_id, command.user_coupon_id, "RESERVED"
        )
        outcome = "RELEASED" if reserved_before else "VOIDED"
        await _record(tx, command, "RELEASE", outcome, 0, None)
    await publish(tx, CouponReleased(**_ids(command)))


async def _answered(tx: Transaction, command: Command) -> tuple[str, int, str] | None:
    """The stored outcome of this operation, when it was handled before."""
    row = await tx.fetchrow(_OPERATION, command.operation_id)
    return None if row is None else (row["outcome"], row["discount"], row["detail"] or "")


async def _holding(
    tx: Transaction, user_coupon_id: str
) -> tuple[domain.Holding | None, domain.Terms | None]:
    row = await tx.fetchrow(_HOLDING, user_coupon_id)
    if row is None:
        return None, None
    holding = domain.Holding(row["user_id"], row["status"], row["expires_at"], row["order_id"])
    terms = domain.Terms(row["discount_type"], row["discount_value"], row["min_order_amount"])
    return holding, terms


async def _record(
    tx: Transaction, command: Command, kind: str, outcome: str, discount: int, detail: str | None
) -> tuple[str, int, str]:
    await tx.execute(
        _RECORD,
        command.operation_id,
        command.order_id,
        command.user_coupon_id,
        kind,
        outcome,
        discount,
        detail,
    )
    return outcome, discount, detail or ""


def _ids(command: Command) -> dict[str, str]:
    return {
        "order_id": command.order_id,
        "operation_id": command.operation_id,
        "user_coupon_id": command.user_coupon_id,
    }
