"""Pure coupon rules: terms, discounts, what a holder sees, and when a coupon can be used."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

DiscountType = Literal["FIXED", "PERCENT"]
# What is stored; EXPIRED is never stored, it is ISSUED seen after expires_at.
StoredStatus = Literal["PENDING", "ISSUED", "USED", "REVOKED", "REJECTED"]
Status = Literal["PENDING", "ISSUED", "USED", "EXPIRED", "REVOKED", "REJECTED"]

MAX_VALID_DAYS = 365


@dataclass(frozen=True)
class Terms:
    """What a coupon gives, and from which order subtotal."""

    discount_type: DiscountType
    discount_value: int
    min_order_amount: int = 0


def terms_error(
    *, discount_type: str, discount_value: int, total_quantity: int, valid_days: int
) -> str | None:
    """Why a coupon definition is invalid, or None when it is fine."""
    if discount_type not in ("FIXED", "PERCENT"):
        return "discount_type must be FIXED or PERCENT"
    if discount_type == "PERCENT" and not 1 <= discount_value <= 100:
        return "a PERCENT discount_value must be between 1 and 100"
    if discount_type == "FIXED" and discount_value < 1:
        return "a FIXED discount_value must be at least 1 KRW"
    if total_quantity < 1:
        return "total_quantity must be at least 1"
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        return f"valid_days must be between 1 and {MAX_VALID_DAYS}"
    return None


def discount(terms: Terms, subtotal: int) -> int:
    """FIXED takes min(value, subtotal); PERCENT takes floor(subtotal * value / 100)."""
    if terms.discount_type == "FIXED":
        return min(terms.discount_value, subtotal)
    return subtotal * terms.discount_value // 100


def expires_at(issued_at: datetime, valid_days: int) -> datetime:
    return issued_at + timedelta(days=valid_days)


def is_expired(expires: datetime | None, now: datetime) -> bool:
    """A coupon is usable up to and including its expires_at instant."""
    return expires is not None and now > expires


def visible_status(status: str, expires: datetime | None, now: datetime) -> Status:
    """The status a holder sees: an ISSUED coupon past its expiry reads EXPIRED."""
    if status == "ISSUED" and is_expired(expires, now):
        return "EXPIRED"
    return status  # type: ignore[return-value]


@dataclass(frozen=True)
class Holding:
    """A user coupon as the checkout rules need it."""

    user_id: str
    status: str
    expires_at: datetime | None
    order_id: str | None


def unusable_reason(
    holding: Holding | None,
    terms: Terms,
    *,
    user_id: str,
    order_id: str,
    subtotal: int,
    now: datetime,
) -> str | None:
    """Why this order cannot use the coupon, or None when it can.

    A coupon already USED by this same order is usable again, even past its expiry (it was
    valid when the order took it): a modify re-reserves it to recompute the discount.
    """
    if holding is None or holding.user_id != user_id:
        return "the coupon is not this user's"
    reserved_here = holding.status == "USED" and holding.order_id == order_id
    if holding.status != "ISSUED" and not reserved_here:
        return f"the coupon is {holding.status}"
    if not reserved_here and is_expired(holding.expires_at, now):
        return "the coupon has expired"
    return below_minimum(terms, subtotal)


def repricing_refusal(
    holding: Holding | None, terms: Terms, *, order_id: str, subtotal: int
) -> str | None:
    """Why the order's coupon gives no discount on its new subtotal, or None when it does.

    Only the order using the coupon may reprice it; expiry does not matter (it was valid when
    the order took it).
    """
    if holding is None or holding.status != "USED" or holding.order_id != order_id:
        return "the coupon is not used by this order"
    return below_minimum(terms, subtotal)


def below_minimum(terms: Terms, subtotal: int) -> str | None:
    """Why the subtotal is too small for the coupon, or None when it is enough (inclusive)."""
    if subtotal < terms.min_order_amount:
        return f"the order subtotal is below the coupon minimum of {terms.min_order_amount}"
    return None


def can_revoke(status: str) -> bool:
    """Only a coupon the user holds unused can be revoked; revoking twice is harmless."""
    return status in ("ISSUED", "REVOKED")
