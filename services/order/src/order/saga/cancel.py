"""Cancelling a PAID order: cancel its payments at the provider, refund every debit, return the
stock, release the coupon. Commands each step sends, then one handler per (step, event)."""

from dataclasses import replace

from contracts.catalog import ReturnStock, StockReturned
from contracts.coupon import CouponReleased, ReleaseCoupon
from contracts.order import OrderCancelled
from contracts.wallet import WalletRefunded
from order.saga.common import record_refund, sold_lines, stock_lines
from order.saga.events import CancelRequested, PaymentsCancelled
from order.saga.state import Effects, Moved, Refund, Saga


# ---- the commands of cancel's steps
def return_stock(saga: Saga) -> list[ReturnStock]:
    return [
        ReturnStock(
            order_id=saga.order_id,
            operation_id=saga.op("cancel:stock"),
            lines=stock_lines(saga.lines),
        )
    ]


def release_coupon(saga: Saga) -> list[ReleaseCoupon]:
    return [
        ReleaseCoupon(
            order_id=saga.order_id,
            operation_id=saga.op("cancel:coupon"),
            user_coupon_id=saga.coupon_id or "",
        )
    ]


# ---- handlers
def requested(saga: Saga, e: CancelRequested, fx: Effects) -> Moved:
    fx.history.append(("CancelRequested", f"refund {sum(d.remaining for d in saga.debits)}"))
    saga = replace(saga, operation="CANCEL")
    if saga.payment_id is None:  # paid in full by a coupon: the provider holds nothing
        return payments_cancelled(saga, PaymentsCancelled(payment_ids=()), fx)
    return saga, "CANCEL_PAYMENT"


def payments_cancelled(saga: Saga, e: PaymentsCancelled, fx: Effects) -> Moved:
    fx.history.append(("PaymentCancelled", ", ".join(e.payment_ids) or "no payment recorded"))
    refunds = tuple(
        Refund(saga.op(f"cancel:refund:{i}"), d.operation_id, d.remaining)
        for i, d in enumerate(saga.debits)
        if d.remaining > 0
    )
    saga = replace(saga, refunds=refunds)
    return saga, "CANCEL_REFUNDING" if refunds else "CANCEL_RETURNING_STOCK"


def refunded(saga: Saga, e: WalletRefunded, fx: Effects) -> Moved:
    saga = record_refund(saga, e, fx)
    return saga, "CANCEL_REFUNDING" if saga.waiting else "CANCEL_RETURNING_STOCK"


def stock_returned(saga: Saga, e: StockReturned, fx: Effects) -> Moved:
    fx.history.append(("StockReturned", f"{sum(x.quantity for x in saga.lines)} unit(s)"))
    if saga.coupon_id:
        return saga, "CANCEL_RELEASING_COUPON"
    return _cancelled(saga, fx)


def coupon_released(saga: Saga, e: CouponReleased, fx: Effects) -> Moved:
    fx.history.append(("CouponReleased", e.user_coupon_id))
    return _cancelled(saga, fx)


def _cancelled(saga: Saga, fx: Effects) -> Moved:
    fx.history.append(("OrderCancelled", f"refunded {saga.total}"))
    fx.messages.append(
        OrderCancelled(
            order_id=saga.order_id,
            user_id=saga.user_id,
            lines=sold_lines(saga.lines),
            total=saga.total,
            paid_at=saga.paid_at or fx.now,
            cancelled_at=fx.now,
        )
    )
    return replace(saga, status="CANCELLED", operation=None, waiting=()), "DONE"
