"""The saga as a pure function: happy path, each failure, compensation order, duplicates."""

from dataclasses import replace
from datetime import UTC, datetime

from pydantic import TypeAdapter

from contracts.catalog import (
    CommitStock,
    ReleaseStock,
    ReservedLine,
    ReserveStock,
    ReturnStock,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    StockReturned,
)
from contracts.coupon import CouponReleased, CouponReserved, ReleaseCoupon, ReserveCoupon
from contracts.order import OrderCancelled, OrderFailed, OrderModified, OrderPaid
from contracts.wallet import (
    DebitWallet,
    RefundWallet,
    WalletDebited,
    WalletDebitFailed,
    WalletRefunded,
)
from order.saga import (
    TRANSITIONS,
    CancelRequested,
    DeadlinePassed,
    Event,
    ModifyRequested,
    PaymentApproved,
    PaymentDeclined,
    PaymentsCancelled,
    PaymentTimedOut,
    Saga,
    Transition,
    advance,
    new_order,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OID = "o1"


def reserved(op: str = f"{OID}:place:stock", qty: int = 2, price: int = 10_000) -> StockReserved:
    line = ReservedLine(
        product_id="p1", quantity=qty, unit_price=price, name="Pen", category="books"
    )
    return StockReserved(order_id=OID, operation_id=op, lines=(line,))


def debited(amount: int, op: str = f"{OID}:place:debit") -> WalletDebited:
    return WalletDebited(
        order_id=OID, operation_id=op, user_id="u1", amount=amount, balance=0, transaction_id="t"
    )


def refunded(op: str, amount: int) -> WalletRefunded:
    return WalletRefunded(
        order_id=OID, operation_id=op, user_id="u1", amount=amount, balance=0, transaction_id="t"
    )


def coupon_reserved(discount: int) -> CouponReserved:
    return CouponReserved(
        order_id=OID, operation_id=f"{OID}:place:coupon", user_coupon_id="c1", discount=discount
    )


def run(saga: Saga, *events: Event) -> tuple[Saga, list[Transition]]:
    steps = []
    for event in events:
        t = advance(saga, event, NOW)
        steps.append(t)
        saga = t.saga
    return saga, steps


def placed(coupon: str | None = None, qty: int = 2) -> Saga:
    start = new_order(order_id=OID, user_id="u1", items=(("p1", qty),), coupon_id=coupon, now=NOW)
    [cmd] = start.messages
    assert isinstance(cmd, ReserveStock) and cmd.operation_id == f"{OID}:place:stock"
    return start.saga


def paid(qty: int = 2) -> Saga:
    saga, _ = run(
        placed(qty=qty),
        reserved(qty=qty),
        debited(qty * 10_000),
        PaymentApproved("pay1"),
    )
    assert saga.status == "PAID"
    return saga


def test_happy_path_reserves_debits_pays_and_commits_without_waiting() -> None:
    saga, steps = run(placed(), reserved(), debited(20_000))
    assert isinstance(steps[0].messages[0], DebitWallet) and steps[0].messages[0].amount == 20_000
    assert saga.step == "PAYING"
    saga, [approved] = run(saga, PaymentApproved("pay1"))
    assert (saga.status, saga.step, saga.total, saga.waiting) == ("PAID", "DONE", 20_000, ())
    commit, event = approved.messages
    assert commit == CommitStock(order_id=OID, operation_id=f"{OID}:place:stock")
    assert isinstance(event, OrderPaid) and event.lines[0].name == "Pen"
    assert [e for e, _ in approved.history] == ["PaymentApproved", "StockCommitSent", "OrderPaid"]


def test_duplicate_and_stale_replies_change_nothing() -> None:
    saga, _ = run(placed(), reserved())
    again = advance(saga, reserved(), NOW)
    assert not again.applied and again.saga == saga
    stale = advance(saga, debited(20_000, op=f"{OID}:modify:9:debit"), NOW)
    assert not stale.applied


def test_out_of_stock_fails_without_compensation() -> None:
    failed = StockReservationFailed(
        order_id=OID, operation_id=f"{OID}:place:stock", reason="OUT_OF_STOCK", product_ids=("p1",)
    )
    saga, [t] = run(placed(), failed)
    assert (saga.status, saga.failure_code) == ("FAILED", "OUT_OF_STOCK")
    assert [type(m) for m in t.messages] == [OrderFailed]


def test_debit_failure_releases_coupon_then_stock() -> None:
    coupon = coupon_reserved(1_000)
    saga, steps = run(placed(coupon="c1"), reserved())
    assert (
        isinstance(steps[0].messages[0], ReserveCoupon) and steps[0].messages[0].subtotal == 20_000
    )
    no_money = WalletDebitFailed(
        order_id=OID, operation_id=f"{OID}:place:debit", user_id="u1", reason="INSUFFICIENT_BALANCE"
    )
    saga, steps = run(saga, coupon, no_money)
    assert steps[0].messages[0].amount == 19_000  # type: ignore[attr-defined]
    assert isinstance(steps[1].messages[0], ReleaseCoupon)
    saga, steps = run(
        saga,
        CouponReleased(
            order_id=OID, operation_id=f"{OID}:place:coupon-release", user_coupon_id="c1"
        ),
    )
    assert isinstance(steps[0].messages[0], ReleaseStock)
    saga, _ = run(saga, StockReleased(order_id=OID, operation_id=f"{OID}:place:stock"))
    assert (saga.status, saga.failure_code) == ("FAILED", "INSUFFICIENT_BALANCE")


def test_declined_payment_refunds_then_releases() -> None:
    saga, steps = run(placed(), reserved(), debited(20_000), PaymentDeclined("pay1"))
    [refund] = steps[-1].messages
    assert isinstance(refund, RefundWallet)
    assert (refund.debit_operation_id, refund.amount) == (f"{OID}:place:debit", 20_000)
    saga, _ = run(
        saga,
        refunded(refund.operation_id, 20_000),
        StockReleased(order_id=OID, operation_id=f"{OID}:place:stock"),
    )
    assert (saga.status, saga.failure_code) == ("FAILED", "PAYMENT_DECLINED")


def test_payment_timeout_voids_at_provider_before_refunding() -> None:
    saga, steps = run(placed(), reserved(), debited(20_000), PaymentTimedOut("slow"))
    assert saga.step == "VOIDING_PAYMENT" and steps[-1].messages == ()
    saga, steps = run(saga, PaymentsCancelled(("pay1",)))
    assert isinstance(steps[0].messages[0], RefundWallet) and saga.failure_code == "PAYMENT_TIMEOUT"


def test_deadline_resends_same_operation_then_compensates() -> None:
    saga = placed()
    again = advance(saga, DeadlinePassed(attempt=1, max_attempts=3), NOW)
    [cmd] = again.messages
    assert isinstance(cmd, ReserveStock) and cmd.operation_id == f"{OID}:place:stock"
    assert again.saga.step == "RESERVING_STOCK"
    gave_up = advance(saga, DeadlinePassed(attempt=3, max_attempts=3), NOW)
    assert gave_up.saga.step == "RELEASING_STOCK" and isinstance(gave_up.messages[0], ReleaseStock)
    saga, _ = run(
        gave_up.saga, reserved(), StockReleased(order_id=OID, operation_id=f"{OID}:place:stock")
    )
    assert saga.status == "FAILED"


def test_debit_deadline_voids_the_debit() -> None:
    saga, _ = run(placed(), reserved())
    t = advance(saga, DeadlinePassed(attempt=4, max_attempts=4), NOW)
    assert t.saga.step == "REFUNDING"
    assert (
        isinstance(t.messages[0], RefundWallet)
        and t.messages[0].debit_operation_id == f"{OID}:place:debit"
    )


def test_cancel_refunds_every_debit_returns_stock() -> None:
    saga, steps = run(paid(), CancelRequested(), PaymentsCancelled(("pay1",)))
    [refund] = steps[-1].messages
    assert isinstance(refund, RefundWallet) and refund.amount == 20_000
    saga, steps = run(saga, refunded(refund.operation_id, 20_000))
    assert isinstance(steps[0].messages[0], ReturnStock)
    saga, steps = run(saga, StockReturned(order_id=OID, operation_id=f"{OID}:cancel:stock"))
    assert saga.status == "CANCELLED" and isinstance(steps[0].messages[0], OrderCancelled)
    assert advance(saga, CancelRequested(), NOW).saga.status == "CANCELLED"


def test_modify_up_reserves_debits_difference_and_commits() -> None:
    saga, steps = run(paid(), ModifyRequested(items=(("p1", 3),)))
    [cmd] = steps[0].messages
    assert isinstance(cmd, ReserveStock) and cmd.lines[0].quantity == 1
    saga, steps = run(saga, reserved(op=f"{OID}:modify:1:stock", qty=1))
    [debit] = steps[0].messages
    assert isinstance(debit, DebitWallet) and debit.amount == 10_000
    saga, steps = run(saga, debited(10_000, op=f"{OID}:modify:1:debit"))
    assert (saga.total, saga.operation, saga.modify_outcome) == (30_000, None, "APPLIED")
    commit, modified = steps[0].messages
    assert commit == CommitStock(order_id=OID, operation_id=f"{OID}:modify:1:stock")
    assert isinstance(modified, OrderModified)
    assert [d.amount for d in saga.debits] == [20_000, 10_000]


def test_modify_down_refunds_surplus_and_returns_stock() -> None:
    saga, steps = run(paid(qty=3), ModifyRequested(items=(("p1", 1),)))
    [refund] = steps[0].messages
    assert isinstance(refund, RefundWallet) and refund.amount == 20_000
    saga, steps = run(saga, refunded(refund.operation_id, 20_000))
    saga, _ = run(saga, StockReturned(order_id=OID, operation_id=f"{OID}:modify:1:return"))
    assert (saga.total, saga.lines[0].quantity, saga.modify_outcome) == (10_000, 1, "APPLIED")


def test_impossible_modify_changes_nothing() -> None:
    before = paid()
    saga, _ = run(before, ModifyRequested(items=(("p1", 5),)))
    no_money = WalletDebitFailed(
        order_id=OID,
        operation_id=f"{OID}:modify:1:debit",
        user_id="u1",
        reason="INSUFFICIENT_BALANCE",
    )
    saga, steps = run(saga, reserved(op=f"{OID}:modify:1:stock", qty=3), no_money)
    assert isinstance(steps[-1].messages[0], ReleaseStock)
    saga, _ = run(saga, StockReleased(order_id=OID, operation_id=f"{OID}:modify:1:stock"))
    assert saga.modify_outcome == "INSUFFICIENT_BALANCE"
    assert replace(saga, modify_seq=0, modify_outcome=None, waiting=()) == replace(
        before, waiting=()
    )


def test_table_rows_all_have_handlers() -> None:
    assert ("PAYING", "PaymentApproved", "DONE") in TRANSITIONS


def test_a_saga_saved_with_coupon_terms_still_loads_and_moves_on() -> None:
    saved = {
        "order_id": OID,
        "user_id": "u1",
        "lines": [
            {
                "product_id": "p1",
                "quantity": 2,
                "unit_price": 10_000,
                "name": "Pen",
                "category": "b",
            }
        ],
        "status": "PENDING",
        "step": "DEBITING",
        "coupon_id": "c1",
        "coupon": {
            "user_coupon_id": "c1",
            "discount_type": "PERCENT",
            "discount_value": 10,
            "min_order_amount": 5_000,
        },
        "subtotal": 20_000,
        "discount": 2_000,
        "total": 18_000,
        "debits": [],
        "refunds": [],
        "waiting": [f"{OID}:place:debit"],
        "failure_code": None,
        "operation": None,
        "modify_seq": 0,
        "modify": None,
        "modify_outcome": None,
        "payment_id": None,
        "paid_at": None,
    }
    saga = TypeAdapter(Saga).validate_python(saved)
    assert (saga.step, saga.discount, saga.total) == ("DEBITING", 2_000, 18_000)
    saga, _ = run(saga, debited(18_000), PaymentApproved("pay1"))
    assert (saga.status, saga.total) == ("PAID", 18_000)
