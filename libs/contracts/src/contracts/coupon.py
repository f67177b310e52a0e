"""Coupon messages: the first-come-first-served line, and the saga's coupon use."""

from datetime import datetime
from typing import Literal

from contracts.base import Message
from contracts.topics import (
    COUPON_COMMANDS,
    COUPON_EVENTS,
    COUPON_ISSUE_REQUESTS,
    COUPON_REPLIES,
)


class IssueCouponRequested(Message):
    """A user got a place in a coupon's line; the coupon's partition orders the line."""

    TOPIC = COUPON_ISSUE_REQUESTS
    KEY = "coupon_id"
    coupon_id: str
    user_coupon_id: str
    user_id: str
    requested_at: datetime


class CouponIssued(Message):
    """A user coupon left the line as ISSUED."""

    TOPIC = COUPON_EVENTS
    KEY = "coupon_id"
    coupon_id: str
    user_coupon_id: str
    user_id: str
    issued_at: datetime
    expires_at: datetime


class CouponRejected(Message):
    """A user coupon left the line as REJECTED because the coupon sold out."""

    TOPIC = COUPON_EVENTS
    KEY = "coupon_id"
    coupon_id: str
    user_coupon_id: str
    user_id: str


class ReserveCoupon(Message):
    """Use a user coupon on an order whose subtotal is given (idempotent per operation)."""

    TOPIC = COUPON_COMMANDS
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_id: str
    user_coupon_id: str
    subtotal: int


class ReleaseCoupon(Message):
    """The order failed or was cancelled: the coupon goes back to ISSUED."""

    TOPIC = COUPON_COMMANDS
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_coupon_id: str


class CouponReserved(Message):
    """The coupon is USED by this order and takes `discount` off its subtotal."""

    TOPIC = COUPON_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_coupon_id: str
    discount: int


class CouponReservationFailed(Message):
    """The coupon cannot be used on this order; nothing changed."""

    TOPIC = COUPON_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_coupon_id: str
    reason: Literal["COUPON_NOT_USABLE"]
    detail: str


class RepriceCoupon(Message):
    """The order's lines changed: quote the discount its USED coupon gives the new subtotal."""

    TOPIC = COUPON_COMMANDS
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_coupon_id: str
    subtotal: int


class CouponRepriced(Message):
    """The discount the order's coupon gives its new subtotal; the coupon itself is unchanged."""

    TOPIC = COUPON_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_coupon_id: str
    discount: int


class CouponRepricingFailed(Message):
    """The coupon does not cover the new subtotal (below its minimum order); nothing changed."""

    TOPIC = COUPON_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_coupon_id: str
    reason: Literal["COUPON_NOT_USABLE"]
    detail: str


class CouponReleased(Message):
    """The coupon is ISSUED again."""

    TOPIC = COUPON_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_coupon_id: str
