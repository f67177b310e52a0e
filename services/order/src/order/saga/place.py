"""Placing an order: reserve stock, use the coupon, debit the wallet, pay; or give it all back.

Commands each step sends, then one handler per (step, event) of the table; each handler
returns the saga and the step it goes to, one of those its table row declares.
"""

from dataclasses import replace

from contracts.catalog import (
    ReleaseStock,
    ReserveStock,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from contracts.coupon import (
    CouponReleased,
    CouponReservationFailed,
    CouponReserved,
    ReleaseCoupon,
    ReserveCoupon,
)
from contracts.order import OrderFailed, OrderPaid
from contracts.wallet import DebitWallet, WalletDebited, WalletDebitFailed, WalletRefunded
from order.domain import Debit, subtotal
from order.saga.common import (
    commit_stock,
    priced_lines,
    record_refund,
    retry,
    sold_lines,
    stock_lines,
    timed_out,
)
from order.saga.events import (
    DeadlinePassed,
    PaymentApproved,
    PaymentDeclined,
    PaymentsCancelled,
    PaymentTimedOut,
)
from order.saga.state import Effects, Moved, Refund, Saga, StepName


# ---- the commands of placing's steps
def reserve_stock(saga: Saga) -> list[ReserveStock]:
    return [
        ReserveStock(
            order_id=saga.order_id,
            operation_id=saga.op("place:stock"),
            lines=stock_lines(saga.lines),
        )
    ]


def reserve_coupon(saga: Saga) -> list[ReserveCoupon]:
    return [
        ReserveCoupon(
            order_id=saga.order_id,
            operation_id=saga.op("place:coupon"),
            user_id=saga.user_id,
            user_coupon_id=saga.coupon_id or "",
            subtotal=saga.subtotal,
        )
    ]


def debit_wallet(saga: Saga) -> list[DebitWallet]:
    return [
        DebitWallet(
            order_id=saga.order_id,
            operation_id=saga.op("place:debit"),
            user_id=saga.user_id,
            amount=saga.total,
        )
    ]


def release_coupon(saga: Saga) -> list[ReleaseCoupon]:
    return [
        ReleaseCoupon(
            order_id=saga.order_id,
            operation_id=saga.op("place:coupon-release"),
            user_coupon_id=saga.coupon_id or "",
        )
    ]


def release_stock(saga: Saga) -> list[ReleaseStock]:
    return [ReleaseStock(order_id=saga.order_id, operation_id=saga.op("place:stock"))]


# ---- forward
def stock_reserved(saga: Saga, e: StockReserved, fx: Effects) -> Moved:
    lines = priced_lines(e.lines)
    sub = subtotal(lines)
    saga = replace(saga, lines=lines, subtotal=sub, total=sub)
    fx.history.append(("StockReserved", f"subtotal {sub}"))
    if saga.coupon_id:
        return saga, "RESERVING_COUPON"
    return _charge(saga, fx)


def coupon_reserved(saga: Saga, e: CouponReserved, fx: Effects) -> Moved:
    saga = replace(saga, discount=e.discount, total=saga.subtotal - e.discount)
    fx.history.append(("CouponReserved", f"discount {e.discount}"))
    return _charge(saga, fx)


def _charge(saga: Saga, fx: Effects) -> Moved:
    """Debit the wallet, or when nothing is owed (a 100% coupon), the order is paid as it is:
    no wallet debit of 0 and no provider payment."""
    if saga.total > 0:
        return saga, "DEBITING"
    fx.history.append(("PaymentSkipped", "total 0: nothing to charge"))
    return _paid(saga, None, fx)


def debited(saga: Saga, e: WalletDebited, fx: Effects) -> Moved:
    fx.history.append(("WalletDebited", f"{e.amount} taken"))
    return replace(saga, debits=(Debit(e.operation_id, e.amount),)), "PAYING"


def approved(saga: Saga, e: PaymentApproved, fx: Effects) -> Moved:
    """Paid: the reserved units become sold by a one-way CommitStock."""
    fx.history.append(("PaymentApproved", e.payment_id))
    return _paid(saga, e.payment_id, fx)


def _paid(saga: Saga, payment_id: str | None, fx: Effects) -> Moved:
    commit_stock(saga.op("place:stock"), saga, "reserved units sold", fx)
    saga = replace(saga, payment_id=payment_id, status="PAID", paid_at=fx.now, waiting=())
    fx.history.append(("OrderPaid", f"total {saga.total}"))
    fx.messages.append(
        OrderPaid(
            order_id=saga.order_id,
            user_id=saga.user_id,
            lines=sold_lines(saga.lines),
            subtotal=saga.subtotal,
            discount=saga.discount,
            total=saga.total,
            paid_at=fx.now,
        )
    )
    return saga, "DONE"


# ---- what went wrong, and where compensation starts
def stock_failed(saga: Saga, e: StockReservationFailed, fx: Effects) -> Moved:
    fx.history.append(("StockReservationFailed", f"{e.reason}: {', '.join(e.product_ids)}"))
    return _failed(replace(saga, failure_code=saga.failure_code or e.reason), fx)


def coupon_failed(saga: Saga, e: CouponReservationFailed, fx: Effects) -> Moved:
    fx.history.append(("CouponReservationFailed", e.detail))
    return _failing(saga, "COUPON_NOT_USABLE"), "RELEASING_STOCK"


def debit_failed(saga: Saga, e: WalletDebitFailed, fx: Effects) -> Moved:
    fx.history.append(("WalletDebitFailed", e.reason))
    # An unknown user has no wallet to pay with: to a client that is a balance problem.
    return _failing(saga, "INSUFFICIENT_BALANCE"), _release_from(saga)


def declined(saga: Saga, e: PaymentDeclined, fx: Effects) -> Moved:
    fx.history.append(("PaymentDeclined", e.payment_id))
    return _refund_debit(replace(saga, payment_id=e.payment_id), "PAYMENT_DECLINED")


def payment_timed_out(saga: Saga, e: PaymentTimedOut, fx: Effects) -> Moved:
    fx.history.append(("PaymentTimedOut", e.detail))
    return replace(saga, failure_code="PAYMENT_TIMEOUT"), "VOIDING_PAYMENT"


def voided(saga: Saga, e: PaymentsCancelled, fx: Effects) -> Moved:
    fx.history.append(("PaymentCancelled", ", ".join(e.payment_ids) or "no payment recorded"))
    return _refund_debit(saga, "PAYMENT_TIMEOUT")


def stock_overdue(saga: Saga, e: DeadlinePassed, fx: Effects) -> Moved:
    if not e.last:
        return retry(saga, e, fx)
    timed_out(saga, e, fx)
    return _failing(saga, "OUT_OF_STOCK"), "RELEASING_STOCK"


def coupon_overdue(saga: Saga, e: DeadlinePassed, fx: Effects) -> Moved:
    if not e.last:
        return retry(saga, e, fx)
    timed_out(saga, e, fx)
    return _failing(saga, "COUPON_NOT_USABLE"), "RELEASING_COUPON"


def debit_overdue(saga: Saga, e: DeadlinePassed, fx: Effects) -> Moved:
    """The debit may have happened: refund it (a refund of a debit never made gives nothing)."""
    if not e.last:
        return retry(saga, e, fx)
    timed_out(saga, e, fx)
    return _refund_debit(saga, "PAYMENT_TIMEOUT")


def _failing(saga: Saga, code: str) -> Saga:
    """The first failure names the order's failure code; compensation does not change it."""
    return replace(saga, failure_code=saga.failure_code or code)


def _refund_debit(saga: Saga, code: str) -> Moved:
    refund = Refund(saga.op("place:refund"), saga.op("place:debit"), saga.total)
    return replace(_failing(saga, code), refunds=(refund,)), "REFUNDING"


def _release_from(saga: Saga) -> StepName:
    return "RELEASING_COUPON" if saga.coupon_id else "RELEASING_STOCK"


# ---- compensation, in reverse order
def refunded(saga: Saga, e: WalletRefunded, fx: Effects) -> Moved:
    saga = record_refund(saga, e, fx)
    if saga.waiting:
        return saga, "REFUNDING"
    return saga, _release_from(saga)


def coupon_released(saga: Saga, e: CouponReleased, fx: Effects) -> Moved:
    fx.history.append(("CouponReleased", e.user_coupon_id))
    return saga, "RELEASING_STOCK"


def stock_released(saga: Saga, e: StockReleased, fx: Effects) -> Moved:
    fx.history.append(("StockReleased", "reservation given back"))
    return _failed(saga, fx)


def _failed(saga: Saga, fx: Effects) -> Moved:
    fx.history.append(("OrderFailed", saga.failure_code or ""))
    fx.messages.append(
        OrderFailed(
            order_id=saga.order_id,
            user_id=saga.user_id,
            failure_code=saga.failure_code,
            failed_at=fx.now,
        )
    )
    return replace(saga, status="FAILED", waiting=(), refunds=()), "DONE"
