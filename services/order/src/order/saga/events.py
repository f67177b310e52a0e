"""Every event the saga takes: replies (the contract messages themselves) and its own events.

`SOURCES` says where each comes from, so the table can be checked: a step may wait for a reply
only when it sends the command that reply answers.
"""

from dataclasses import dataclass
from typing import Literal

from contracts import Message
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


@dataclass(frozen=True)
class CancelRequested:
    """The owner asked to cancel a PAID order."""


@dataclass(frozen=True)
class ModifyRequested:
    """The owner asked to replace a PAID order's lines."""

    items: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class PaymentApproved:
    """The provider approved the payment."""

    payment_id: str


@dataclass(frozen=True)
class PaymentDeclined:
    """The provider declined the payment."""

    payment_id: str


@dataclass(frozen=True)
class PaymentTimedOut:
    """No answer from the provider in time; any payment it recorded must be cancelled."""

    detail: str


@dataclass(frozen=True)
class PaymentsCancelled:
    """Every payment the provider holds for the order is cancelled (or there was none)."""

    payment_ids: tuple[str, ...]


@dataclass(frozen=True)
class ProviderCancelFailed:
    """Cancelling the order's payments at the provider kept failing; the step is parked."""

    detail: str


@dataclass(frozen=True)
class DeadlinePassed:
    """The step's reply did not come in time; `attempt` commands were sent so far.

    A forward step gives up after `max_attempts` and compensates; any other step (a
    compensation, or a cancel or modify of a PAID order) is parked after `park_after`
    attempts (0: never), for an operator to look at."""

    attempt: int
    max_attempts: int
    park_after: int = 0

    @property
    def last(self) -> bool:
        """The forward step has had its last attempt."""
        return self.attempt >= self.max_attempts


Reply = (
    StockReserved
    | StockReservationFailed
    | StockReleased
    | StockReturned
    | CouponReserved
    | CouponReservationFailed
    | CouponRepriced
    | CouponRepricingFailed
    | CouponReleased
    | WalletDebited
    | WalletDebitFailed
    | WalletRefunded
)
OwnerRequest = CancelRequested | ModifyRequested
ProviderResult = (
    PaymentApproved | PaymentDeclined | PaymentTimedOut | PaymentsCancelled | ProviderCancelFailed
)
Event = Reply | OwnerRequest | ProviderResult | DeadlinePassed

# Where each event comes from: the command a reply answers, or who raises it.
SOURCES: dict[type, type[Message] | Literal["OWNER", "PROVIDER", "DEADLINE"]] = {
    StockReserved: ReserveStock,
    StockReservationFailed: ReserveStock,
    StockReleased: ReleaseStock,
    StockReturned: ReturnStock,
    CouponReserved: ReserveCoupon,
    CouponReservationFailed: ReserveCoupon,
    CouponRepriced: RepriceCoupon,
    CouponRepricingFailed: RepriceCoupon,
    CouponReleased: ReleaseCoupon,
    WalletDebited: DebitWallet,
    WalletDebitFailed: DebitWallet,
    WalletRefunded: RefundWallet,
    CancelRequested: "OWNER",
    ModifyRequested: "OWNER",
    PaymentApproved: "PROVIDER",
    PaymentDeclined: "PROVIDER",
    PaymentTimedOut: "PROVIDER",
    PaymentsCancelled: "PROVIDER",
    ProviderCancelFailed: "PROVIDER",
    DeadlinePassed: "DEADLINE",
}
