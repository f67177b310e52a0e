"""The saga's table: for each step, the commands it sends, how it is timed, and for each event
it takes the handler and the steps that handler may lead to.

Entering a step sends its commands and waits for their operation ids; `DeadlinePassed`
re-sends the ones still waited for. A handler returns one of its row's next steps (its own
step: it stays, still waiting). Adding a step: its row here, its handler, its contract.
"""

from contracts.catalog import (
    ReleaseStock,
    ReserveStock,
    ReturnStock,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    StockReturned,
)
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
from contracts.wallet import (
    DebitWallet,
    RefundWallet,
    WalletDebited,
    WalletDebitFailed,
    WalletRefunded,
)
from order.saga import cancel, modify, place
from order.saga.common import provider_cancel_failed, refund_wallet, retry
from order.saga.events import (
    CancelRequested,
    DeadlinePassed,
    ModifyRequested,
    PaymentApproved,
    PaymentDeclined,
    PaymentsCancelled,
    PaymentTimedOut,
    ProviderCancelFailed,
)
from order.saga.rows import Deadline, Step, on, sends, step
from order.saga.state import StepName

TABLE: dict[StepName, Step] = {
    # ---- placing: forward
    "RESERVING_STOCK": step(
        "REPLY",
        sends(ReserveStock, place.reserve_stock),
        on(StockReserved, place.stock_reserved, "RESERVING_COUPON", "DEBITING", "DONE"),
        on(StockReservationFailed, place.stock_failed, "DONE"),
        on(DeadlinePassed, place.stock_overdue, "RESERVING_STOCK", "RELEASING_STOCK"),
    ),
    "RESERVING_COUPON": step(
        "REPLY",
        sends(ReserveCoupon, place.reserve_coupon),
        on(CouponReserved, place.coupon_reserved, "DEBITING", "DONE"),
        on(CouponReservationFailed, place.coupon_failed, "RELEASING_STOCK"),
        on(DeadlinePassed, place.coupon_overdue, "RESERVING_COUPON", "RELEASING_COUPON"),
    ),
    "DEBITING": step(
        "REPLY",
        sends(DebitWallet, place.debit_wallet),
        on(WalletDebited, place.debited, "PAYING"),
        on(WalletDebitFailed, place.debit_failed, "RELEASING_COUPON", "RELEASING_STOCK"),
        on(DeadlinePassed, place.debit_overdue, "DEBITING", "REFUNDING"),
    ),
    "PAYING": step(
        "PROVIDER",
        None,
        on(PaymentApproved, place.approved, "DONE"),
        on(PaymentDeclined, place.declined, "REFUNDING"),
        on(PaymentTimedOut, place.payment_timed_out, "VOIDING_PAYMENT"),
    ),
    # ---- placing: compensation, in reverse order
    "VOIDING_PAYMENT": step(
        "PROVIDER_AFTER_GRACE",
        None,
        on(PaymentsCancelled, place.voided, "REFUNDING"),
        on(ProviderCancelFailed, provider_cancel_failed, "VOIDING_PAYMENT"),
    ),
    "REFUNDING": step(
        "REPLY",
        sends(RefundWallet, refund_wallet),
        on(WalletRefunded, place.refunded, "REFUNDING", "RELEASING_COUPON", "RELEASING_STOCK"),
        on(DeadlinePassed, retry, "REFUNDING"),
    ),
    "RELEASING_COUPON": step(
        "REPLY",
        sends(ReleaseCoupon, place.release_coupon),
        on(CouponReleased, place.coupon_released, "RELEASING_STOCK"),
        on(DeadlinePassed, retry, "RELEASING_COUPON"),
    ),
    "RELEASING_STOCK": step(
        "REPLY",
        sends(ReleaseStock, place.release_stock),
        on(StockReleased, place.stock_released, "DONE"),
        on(DeadlinePassed, retry, "RELEASING_STOCK"),
    ),
    # ---- cancel of a PAID order
    "CANCEL_PAYMENT": step(
        "PROVIDER",
        None,
        on(
            PaymentsCancelled,
            cancel.payments_cancelled,
            "CANCEL_REFUNDING",
            "CANCEL_RETURNING_STOCK",
        ),
        on(ProviderCancelFailed, provider_cancel_failed, "CANCEL_PAYMENT"),
    ),
    "CANCEL_REFUNDING": step(
        "REPLY",
        sends(RefundWallet, refund_wallet),
        on(WalletRefunded, cancel.refunded, "CANCEL_REFUNDING", "CANCEL_RETURNING_STOCK"),
        on(DeadlinePassed, retry, "CANCEL_REFUNDING"),
    ),
    "CANCEL_RETURNING_STOCK": step(
        "REPLY",
        sends(ReturnStock, cancel.return_stock),
        on(StockReturned, cancel.stock_returned, "CANCEL_RELEASING_COUPON", "DONE"),
        on(DeadlinePassed, retry, "CANCEL_RETURNING_STOCK"),
    ),
    "CANCEL_RELEASING_COUPON": step(
        "REPLY",
        sends(ReleaseCoupon, cancel.release_coupon),
        on(CouponReleased, cancel.coupon_released, "DONE"),
        on(DeadlinePassed, retry, "CANCEL_RELEASING_COUPON"),
    ),
    # ---- modify of a PAID order
    "MODIFY_RESERVING": step(
        "REPLY",
        sends(ReserveStock, modify.reserve_more),
        on(
            StockReserved,
            modify.reserved,
            "MODIFY_REPRICING_COUPON",
            "MODIFY_DEBITING",
            "MODIFY_REFUNDING",
            "MODIFY_COMMITTING",
            "DONE",
        ),
        on(StockReservationFailed, modify.stock_failed, "DONE"),
        on(DeadlinePassed, modify.reserving_overdue, "MODIFY_RESERVING", "MODIFY_RELEASING"),
    ),
    "MODIFY_REPRICING_COUPON": step(
        "REPLY",
        sends(RepriceCoupon, modify.reprice_coupon),
        on(
            CouponRepriced,
            modify.repriced,
            "MODIFY_DEBITING",
            "MODIFY_REFUNDING",
            "MODIFY_COMMITTING",
            "DONE",
        ),
        on(CouponRepricingFailed, modify.repricing_failed, "MODIFY_RELEASING", "DONE"),
        on(
            DeadlinePassed,
            modify.repricing_overdue,
            "MODIFY_REPRICING_COUPON",
            "MODIFY_RELEASING",
            "DONE",
        ),
    ),
    "MODIFY_DEBITING": step(
        "REPLY",
        sends(DebitWallet, modify.debit_difference),
        on(WalletDebited, modify.debited, "MODIFY_COMMITTING", "DONE"),
        on(WalletDebitFailed, modify.debit_failed, "MODIFY_RELEASING", "DONE"),
        on(DeadlinePassed, retry, "MODIFY_DEBITING"),
    ),
    "MODIFY_REFUNDING": step(
        "REPLY",
        sends(RefundWallet, refund_wallet),
        on(WalletRefunded, modify.refunded, "MODIFY_REFUNDING", "MODIFY_COMMITTING", "DONE"),
        on(DeadlinePassed, retry, "MODIFY_REFUNDING"),
    ),
    "MODIFY_COMMITTING": step(
        "REPLY",
        sends(ReturnStock, modify.return_fewer),
        on(StockReturned, modify.stock_returned, "DONE"),
        on(DeadlinePassed, retry, "MODIFY_COMMITTING"),
    ),
    "MODIFY_RELEASING": step(
        "REPLY",
        sends(ReleaseStock, modify.release_more),
        on(StockReleased, modify.stock_released, "DONE"),
        on(DeadlinePassed, retry, "MODIFY_RELEASING"),
    ),
    # ---- nothing in flight; a PAID order leaves it again for a cancel or a modify
    "DONE": step(
        None,
        None,
        on(
            CancelRequested,
            cancel.requested,
            "CANCEL_PAYMENT",
            "CANCEL_REFUNDING",
            "CANCEL_RETURNING_STOCK",
        ),
        on(
            ModifyRequested,
            modify.requested,
            "MODIFY_RESERVING",
            "MODIFY_REPRICING_COUPON",
            "MODIFY_DEBITING",
            "MODIFY_REFUNDING",
            "MODIFY_COMMITTING",
            "DONE",
        ),
    ),
}

START: StepName = "RESERVING_STOCK"
# Steps the payment worker drives over HTTP; every other waiting step has a reply deadline.
PROVIDER_STEPS: tuple[StepName, ...] = tuple(
    name for name, step in TABLE.items() if step.deadline in ("PROVIDER", "PROVIDER_AFTER_GRACE")
)
# The contract replies some step waits for: what the service's consumer subscribes to.
REPLIES: tuple[type, ...] = tuple(
    dict.fromkeys(row.event for step in TABLE.values() for row in step.on if row.reply)
)
# The commands the steps send: what the service publishes besides its own events.
COMMANDS: tuple[type, ...] = tuple(
    dict.fromkeys(step.sends.command for step in TABLE.values() if step.sends is not None)
)
# Every (step, event, next step) the table allows, in table order: for docs and diagrams.
TRANSITIONS: tuple[tuple[StepName, str, StepName], ...] = tuple(
    (name, row.event.__name__, to)
    for name, step in TABLE.items()
    for row in step.on
    for to in row.to
)


def deadline_of(step: str) -> Deadline:
    """How the order's row is timed while its saga is at `step`."""
    return TABLE[step].deadline  # type: ignore[index]
