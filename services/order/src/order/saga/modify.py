"""Modifying a PAID order: reserve the extra units, have the coupon repriced, move the money
difference, commit the extra units and return the fewer; or release and leave it unchanged.
Commands each step sends, then one handler per (step, event) of the table."""

from dataclasses import replace

from contracts.catalog import (
    ReleaseStock,
    ReserveStock,
    ReturnStock,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    StockReturned,
)
from contracts.coupon import CouponRepriced, CouponRepricingFailed, RepriceCoupon
from contracts.order import OrderModified
from contracts.wallet import DebitWallet, WalletDebited, WalletDebitFailed, WalletRefunded
from order.domain import Debit, ModifyPlan, plan_modify, price_lines, split_refund, subtotal
from order.saga.common import (
    commit_stock,
    priced_lines,
    record_refund,
    retry,
    sold_lines,
    stock_lines,
    timed_out,
)
from order.saga.events import DeadlinePassed, ModifyRequested
from order.saga.state import Effects, Moved, Refund, Saga


def _plan(saga: Saga) -> ModifyPlan:
    assert saga.modify is not None, "a modify step without its plan"
    return saga.modify


def _new_total(saga: Saga) -> int:
    plan = _plan(saga)
    return subtotal(plan.lines) - plan.discount


# ---- the commands of modify's steps
def reserve_more(saga: Saga) -> list[ReserveStock]:
    return [
        ReserveStock(
            order_id=saga.order_id,
            operation_id=saga.modify_op("stock"),
            lines=stock_lines(_plan(saga).more),
        )
    ]


def reprice_coupon(saga: Saga) -> list[RepriceCoupon]:
    return [
        RepriceCoupon(
            order_id=saga.order_id,
            operation_id=saga.modify_op("coupon"),
            user_coupon_id=saga.coupon_id or "",
            subtotal=subtotal(_plan(saga).lines),
        )
    ]


def debit_difference(saga: Saga) -> list[DebitWallet]:
    return [
        DebitWallet(
            order_id=saga.order_id,
            operation_id=saga.modify_op("debit"),
            user_id=saga.user_id,
            amount=_new_total(saga) - saga.total,
        )
    ]


def return_fewer(saga: Saga) -> list[ReturnStock]:
    return [
        ReturnStock(
            order_id=saga.order_id,
            operation_id=saga.modify_op("return"),
            lines=stock_lines(_plan(saga).fewer),
        )
    ]


def release_more(saga: Saga) -> list[ReleaseStock]:
    return [ReleaseStock(order_id=saga.order_id, operation_id=saga.modify_op("stock"))]


# ---- forward
def requested(saga: Saga, e: ModifyRequested, fx: Effects) -> Moved:
    plan = plan_modify(saga.lines, e.items)
    saga = replace(
        saga, operation="MODIFY", modify_seq=saga.modify_seq + 1, modify=plan, modify_outcome=None
    )
    fx.history.append(("ModifyRequested", ", ".join(f"{p} x{q}" for p, q in e.items)))
    if plan.more:
        return saga, "MODIFY_RESERVING"
    return _priced(saga, fx)


def reserved(saga: Saga, e: StockReserved, fx: Effects) -> Moved:
    plan = _plan(saga)
    priced = priced_lines(e.lines)
    saga = replace(saga, modify=replace(plan, lines=price_lines(plan.lines, priced)))
    fx.history.append(("StockReserved", f"{sum(x.quantity for x in priced)} more unit(s)"))
    return _priced(saga, fx)


def _priced(saga: Saga, fx: Effects) -> Moved:
    """The new lines have prices: the coupon service quotes its discount if the lines change."""
    plan = _plan(saga)
    if saga.coupon_id and (plan.more or plan.fewer):
        return saga, "MODIFY_REPRICING_COUPON"
    return _settle(replace(saga, modify=replace(plan, discount=saga.discount)), fx)


def repriced(saga: Saga, e: CouponRepriced, fx: Effects) -> Moved:
    fx.history.append(("CouponRepriced", f"discount {e.discount}"))
    return _settle(replace(saga, modify=replace(_plan(saga), discount=e.discount)), fx)


def _settle(saga: Saga, fx: Effects) -> Moved:
    """Move the money difference: debit more, or refund the surplus over the order's debits."""
    delta = _new_total(saga) - saga.total
    if delta > 0:
        return saga, "MODIFY_DEBITING"
    if delta < 0:
        parts = split_refund(saga.debits, -delta)
        refunds = tuple(
            Refund(saga.modify_op(f"refund:{i}"), d.operation_id, amount)
            for i, (d, amount) in enumerate(parts)
        )
        return replace(saga, refunds=refunds), "MODIFY_REFUNDING"
    return _commit(saga, fx)


def debited(saga: Saga, e: WalletDebited, fx: Effects) -> Moved:
    fx.history.append(("WalletDebited", f"{e.amount} more taken"))
    return _commit(replace(saga, debits=(*saga.debits, Debit(e.operation_id, e.amount))), fx)


def refunded(saga: Saga, e: WalletRefunded, fx: Effects) -> Moved:
    saga = record_refund(saga, e, fx)
    if saga.waiting:
        return saga, "MODIFY_REFUNDING"
    return _commit(saga, fx)


def _commit(saga: Saga, fx: Effects) -> Moved:
    """The money moved: commit the extra units (one-way) and return the fewer ones."""
    plan = _plan(saga)
    if plan.more:
        more = sum(x.quantity for x in plan.more)
        commit_stock(saga.modify_op("stock"), saga, f"{more} more unit(s) sold", fx)
    if plan.fewer:
        return saga, "MODIFY_COMMITTING"
    return _applied(saga, fx)


def stock_returned(saga: Saga, e: StockReturned, fx: Effects) -> Moved:
    fx.history.append(("StockReturned", f"{sum(x.quantity for x in _plan(saga).fewer)} unit(s)"))
    return _applied(saga, fx)


def _applied(saga: Saga, fx: Effects) -> Moved:
    plan = _plan(saga)
    previous = saga.lines
    lines = tuple(x for x in plan.lines if x.quantity > 0)
    sub = subtotal(lines)
    saga = replace(
        saga,
        lines=lines,
        subtotal=sub,
        discount=plan.discount,
        total=sub - plan.discount,
        operation=None,
        waiting=(),
        modify=None,
        modify_outcome="APPLIED",
    )
    fx.history.append(("OrderModified", f"total {saga.total}"))
    fx.messages.append(
        OrderModified(
            order_id=saga.order_id,
            user_id=saga.user_id,
            previous_lines=sold_lines(previous),
            lines=sold_lines(lines),
            total=saga.total,
            paid_at=saga.paid_at or fx.now,
            modified_at=fx.now,
        )
    )
    return saga, "DONE"


# ---- stock, coupon or money said no: release what was reserved, change nothing
def stock_failed(saga: Saga, e: StockReservationFailed, fx: Effects) -> Moved:
    fx.history.append(("StockReservationFailed", f"{e.reason}: {', '.join(e.product_ids)}"))
    return _failed(saga, e.reason, fx)


def reserving_overdue(saga: Saga, e: DeadlinePassed, fx: Effects) -> Moved:
    if not e.last:
        return retry(saga, e, fx)
    timed_out(saga, e, fx)
    return replace(saga, modify_outcome="OUT_OF_STOCK"), "MODIFY_RELEASING"


def repricing_failed(saga: Saga, e: CouponRepricingFailed, fx: Effects) -> Moved:
    fx.history.append(("CouponRepricingFailed", e.detail))
    return _release(saga, "COUPON_NOT_USABLE", fx)


def repricing_overdue(saga: Saga, e: DeadlinePassed, fx: Effects) -> Moved:
    """Nothing changed at the coupon service: give up as if the coupon did not cover the lines."""
    if not e.last:
        return retry(saga, e, fx)
    timed_out(saga, e, fx)
    return _release(saga, "COUPON_NOT_USABLE", fx)


def debit_failed(saga: Saga, e: WalletDebitFailed, fx: Effects) -> Moved:
    fx.history.append(("WalletDebitFailed", e.reason))
    return _release(saga, "INSUFFICIENT_BALANCE", fx)


def _release(saga: Saga, code: str, fx: Effects) -> Moved:
    """Give back the extra units reserved for this modify, if any, then fail with `code`."""
    if _plan(saga).more:
        return replace(saga, modify_outcome=code), "MODIFY_RELEASING"
    return _failed(saga, code, fx)


def stock_released(saga: Saga, e: StockReleased, fx: Effects) -> Moved:
    fx.history.append(("StockReleased", "reservation given back"))
    return _failed(saga, saga.modify_outcome or "OUT_OF_STOCK", fx)


def _failed(saga: Saga, code: str, fx: Effects) -> Moved:
    fx.history.append(("ModifyFailed", code))
    return (
        replace(saga, operation=None, waiting=(), refunds=(), modify=None, modify_outcome=code),
        "DONE",
    )
