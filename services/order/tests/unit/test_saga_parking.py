"""The saga's new rows, pure: parking after bounded attempts, 0-total orders, cancel of them."""

from contracts.catalog import ReleaseStock, ReturnStock, StockReleased
from contracts.coupon import ReleaseCoupon
from contracts.order import OrderPaid
from contracts.wallet import DebitWallet, WalletDebitFailed
from order.saga import (
    TRANSITIONS,
    CancelRequested,
    DeadlinePassed,
    PaymentsCancelled,
    PaymentTimedOut,
    ProviderCancelFailed,
    Saga,
    advance,
)

from .test_saga import NOW, OID, coupon_reserved, debited, paid, placed, reserved, run


def releasing_stock() -> Saga:
    refused = WalletDebitFailed(
        order_id=OID, operation_id=f"{OID}:place:debit", user_id="u1", reason="INSUFFICIENT_BALANCE"
    )
    saga, _ = run(placed(), reserved(), refused)
    assert saga.step == "RELEASING_STOCK"
    return saga


def test_a_compensation_resends_then_parks_after_its_attempts_still_waiting() -> None:
    saga = releasing_stock()
    resent = advance(saga, DeadlinePassed(attempt=2, max_attempts=2, park_after=3), NOW)
    assert resent.parked is None
    assert [type(m) for m in resent.messages] == [ReleaseStock]
    parked = advance(saga, DeadlinePassed(attempt=3, max_attempts=2, park_after=3), NOW)
    assert parked.applied and parked.parked and "RELEASING_STOCK" in parked.parked
    assert parked.messages == ()
    assert [e for e, _ in parked.history] == ["SagaParked"]
    # Still PENDING, same step, still waiting: a late reply moves it on.
    assert (parked.saga.status, parked.saga.step) == ("PENDING", "RELEASING_STOCK")
    late = StockReleased(order_id=OID, operation_id=f"{OID}:place:stock")
    done, _ = run(parked.saga, late)
    assert done.status == "FAILED"


def test_no_park_limit_resends_forever() -> None:
    saga = releasing_stock()
    again = advance(saga, DeadlinePassed(attempt=99, max_attempts=2), NOW)
    assert again.parked is None and [type(m) for m in again.messages] == [ReleaseStock]


def test_forward_steps_still_compensate_instead_of_parking() -> None:
    saga = placed()
    gave_up = advance(saga, DeadlinePassed(attempt=2, max_attempts=2, park_after=2), NOW)
    assert gave_up.parked is None and gave_up.saga.step == "RELEASING_STOCK"


def test_a_provider_cancel_that_keeps_failing_parks_voiding_and_cancel() -> None:
    voiding, _ = run(placed(), reserved(), debited(20_000), PaymentTimedOut("slow"))
    assert voiding.step == "VOIDING_PAYMENT"
    parked = advance(voiding, ProviderCancelFailed("HTTP 503"), NOW)
    assert parked.parked and parked.saga.step == "VOIDING_PAYMENT"
    assert parked.saga.status == "PENDING"
    cancelling, _ = run(paid(), CancelRequested())
    assert cancelling.step == "CANCEL_PAYMENT"
    parked = advance(cancelling, ProviderCancelFailed("HTTP 503"), NOW)
    assert parked.parked and parked.saga.status == "PAID"  # its last public status
    assert ("CANCEL_PAYMENT", "ProviderCancelFailed", "CANCEL_PAYMENT") in TRANSITIONS


def test_a_full_coupon_pays_without_debit_or_provider() -> None:
    saga, steps = run(placed(coupon="c1"), reserved(), coupon_reserved(20_000))
    assert (saga.status, saga.step, saga.total, saga.payment_id) == ("PAID", "DONE", 0, None)
    messages = steps[-1].messages
    assert not any(isinstance(m, DebitWallet) for m in messages)
    [event] = [m for m in messages if isinstance(m, OrderPaid)]
    assert (event.total, event.discount) == (0, 20_000)
    assert "PaymentSkipped" in [e for e, _ in steps[-1].history]
    assert ("RESERVING_COUPON", "CouponReserved", "DONE") in TRANSITIONS


def test_cancel_of_a_0_total_order_skips_the_provider() -> None:
    saga, _ = run(placed(coupon="c1"), reserved(), coupon_reserved(20_000))
    cancelling, [t] = run(saga, CancelRequested())
    assert cancelling.step == "CANCEL_RETURNING_STOCK"
    assert [type(m) for m in t.messages] == [ReturnStock]
    assert [e for e, _ in t.history] == ["CancelRequested", "PaymentCancelled"]


def test_a_paid_order_still_cancels_at_the_provider() -> None:
    cancelling, _ = run(paid(), CancelRequested())
    assert cancelling.step == "CANCEL_PAYMENT"
    after, _ = run(cancelling, PaymentsCancelled(("pay1",)))
    assert after.step == "CANCEL_REFUNDING"


def test_a_partial_coupon_still_debits() -> None:
    saga, [_, coupon] = run(placed(coupon="c1"), reserved(), coupon_reserved(1_000))
    assert saga.step == "DEBITING"
    assert [type(m) for m in coupon.messages] == [DebitWallet]
    assert not any(isinstance(m, ReleaseCoupon) for m in coupon.messages)
