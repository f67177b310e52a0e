"""Modify of an order with a coupon: the coupon service quotes the discount of the new lines."""

from dataclasses import replace

from contracts.catalog import ReleaseStock, ReserveStock, StockReleased
from contracts.coupon import CouponRepriced, CouponRepricingFailed, RepriceCoupon
from contracts.order import OrderModified
from contracts.wallet import DebitWallet, RefundWallet
from order.saga import DeadlinePassed, ModifyRequested, PaymentApproved, Saga, advance

from .test_saga import NOW, OID, coupon_reserved, debited, refunded, reserved, run
from .test_saga import placed as placed_order

REPRICE = f"{OID}:modify:1:coupon"


def paid_with_coupon(discount: int = 1_000) -> Saga:
    saga, _ = run(
        placed_order(coupon="c1"),
        reserved(),
        coupon_reserved(discount),
        debited(20_000 - discount),
        PaymentApproved("pay1"),
    )
    assert (saga.status, saga.total, saga.discount) == ("PAID", 20_000 - discount, discount)
    return saga


def repriced(discount: int) -> CouponRepriced:
    return CouponRepriced(
        order_id=OID, operation_id=REPRICE, user_coupon_id="c1", discount=discount
    )


def not_usable() -> CouponRepricingFailed:
    return CouponRepricingFailed(
        order_id=OID,
        operation_id=REPRICE,
        user_coupon_id="c1",
        reason="COUPON_NOT_USABLE",
        detail="below the minimum order",
    )


def test_modify_up_debits_the_difference_at_the_quoted_discount() -> None:
    saga, _ = run(paid_with_coupon(), ModifyRequested(items=(("p1", 3),)))
    saga, [t] = run(saga, reserved(op=f"{OID}:modify:1:stock", qty=1))
    assert saga.step == "MODIFY_REPRICING_COUPON"
    assert t.messages == (
        RepriceCoupon(order_id=OID, operation_id=REPRICE, user_coupon_id="c1", subtotal=30_000),
    )
    saga, [t] = run(saga, repriced(4_500))
    [debit] = t.messages
    assert isinstance(debit, DebitWallet) and debit.amount == (30_000 - 4_500) - 19_000
    saga, [t] = run(saga, debited(debit.amount, op=f"{OID}:modify:1:debit"))
    assert (saga.subtotal, saga.discount, saga.total) == (30_000, 4_500, 25_500)
    [modified] = [m for m in t.messages if isinstance(m, OrderModified)]
    assert modified.total == 25_500 and saga.modify_outcome == "APPLIED"


def test_modify_down_refunds_at_the_quoted_discount() -> None:
    saga, [t] = run(paid_with_coupon(), ModifyRequested(items=(("p1", 1),)))
    assert [type(m) for m in t.messages] == [RepriceCoupon]
    saga, [t] = run(saga, repriced(1_000))
    [refund] = t.messages
    assert isinstance(refund, RefundWallet) and refund.amount == 19_000 - (10_000 - 1_000)
    saga, _ = run(saga, refunded(refund.operation_id, refund.amount))
    assert saga.step == "MODIFY_COMMITTING"


def test_a_coupon_that_no_longer_covers_the_lines_releases_and_changes_nothing() -> None:
    before = paid_with_coupon()
    saga, _ = run(before, ModifyRequested(items=(("p1", 3),)))
    saga, [_, t] = run(saga, reserved(op=f"{OID}:modify:1:stock", qty=1), not_usable())
    assert saga.step == "MODIFY_RELEASING" and [type(m) for m in t.messages] == [ReleaseStock]
    saga, _ = run(saga, StockReleased(order_id=OID, operation_id=f"{OID}:modify:1:stock"))
    assert saga.modify_outcome == "COUPON_NOT_USABLE"
    assert replace(saga, modify_seq=0, modify_outcome=None, waiting=()) == replace(
        before, waiting=()
    )


def test_a_coupon_not_usable_on_fewer_lines_fails_at_once() -> None:
    before = paid_with_coupon()
    saga, [_, t] = run(before, ModifyRequested(items=(("p1", 1),)), not_usable())
    assert (saga.step, saga.modify_outcome, t.messages) == ("DONE", "COUPON_NOT_USABLE", ())
    assert (saga.lines, saga.total) == (before.lines, before.total)


def test_repricing_is_resent_then_given_up_as_not_usable() -> None:
    saga, _ = run(paid_with_coupon(), ModifyRequested(items=(("p1", 3),)))
    saga, _ = run(saga, reserved(op=f"{OID}:modify:1:stock", qty=1))
    again = advance(saga, DeadlinePassed(attempt=1, max_attempts=3), NOW)
    assert [m.operation_id for m in again.messages] == [REPRICE]  # type: ignore[attr-defined]
    gave_up = advance(saga, DeadlinePassed(attempt=3, max_attempts=3), NOW)
    assert gave_up.saga.step == "MODIFY_RELEASING"
    assert gave_up.saga.modify_outcome == "COUPON_NOT_USABLE"
    assert not advance(gave_up.saga, repriced(1_000), NOW).applied  # too late: ignored


def test_unchanged_lines_keep_the_discount_without_asking() -> None:
    before = paid_with_coupon()
    saga, [t] = run(before, ModifyRequested(items=(("p1", 2),)))
    assert not any(isinstance(m, RepriceCoupon) for m in t.messages)
    assert (saga.step, saga.modify_outcome, saga.discount) == ("DONE", "APPLIED", 1_000)


def test_without_a_coupon_nothing_is_repriced() -> None:
    saga, _ = run(placed_order(), reserved(), debited(20_000), PaymentApproved("pay1"))
    saga, [t] = run(saga, ModifyRequested(items=(("p1", 3),)))
    assert [type(m) for m in t.messages] == [ReserveStock]
    saga, [t] = run(saga, reserved(op=f"{OID}:modify:1:stock", qty=1))
    assert [type(m) for m in t.messages] == [DebitWallet]
