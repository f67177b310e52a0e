"""What the auditor reads in: the books of a quiet shop, as plain rows.

The runner fills `Books` from the services' databases, the dead-letter topics and its own records
of the run (what it charged, the stock it created, the faults and the HTTP answers it saw); the
rules in `chaos.checker` read nothing else, so the unit tests can feed them made-up books.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    quantity: int
    unit_price: int


@dataclass(frozen=True)
class OrderRow:
    id: str
    user_id: str
    status: str
    step: str
    total: int
    coupon_id: str | None
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True)
class LedgerSums:
    """One wallet's balance and its ledger, summed by transaction type (signed amounts)."""

    balance: int
    charges: int = 0
    payments: int = 0  # the PAYMENT rows' amounts, negative
    refunds: int = 0
    other: int = 0  # any other type: there should be none


@dataclass(frozen=True)
class StockRow:
    available: int
    reserved: int
    sold: int


@dataclass(frozen=True)
class CouponRow:
    total_quantity: int
    issued_quantity: int


@dataclass(frozen=True)
class UserCouponRow:
    id: str
    coupon_id: str
    status: str
    order_id: str | None


@dataclass(frozen=True)
class PaymentRow:
    order_id: str
    status: str
    amount: int


@dataclass(frozen=True)
class FaultOutcome:
    name: str
    recovery_s: float | None  # None: the reads never came back while it was watched
    spared: bool = False  # another replica of every service it hit kept serving
    # Probe reads that failed from its start to recovery, by what they got ("order 503": rounds).
    failed_reads: dict[str, int] = field(default_factory=dict)


@dataclass
class Books:
    """Everything the auditor knows once the shop is quiet."""

    orders: list[OrderRow]
    wallets: dict[str, LedgerSums]  # user id -> sums
    charged: dict[str, int]  # what the scenario charged each of its users
    start_stock: dict[str, int]  # product id -> units the scenario created it with
    stock: dict[str, StockRow]
    coupons: dict[str, CouponRow]
    user_coupons: list[UserCouponRow]
    payments: list[PaymentRow]
    analytics: dict[str, tuple[int, int]]  # product id -> (quantity, amount) counted
    analytics_orders: dict[str, str]  # order id -> status in analytics' sale_orders
    dead_letters: dict[str, int]  # service -> rows with status DEAD
    dlt_messages: dict[str, int]  # dead-letter topic -> messages on it
    accepted_orders: set[str]  # ids the gateway answered 202 for
    settled_after_s: float | None  # after the last fault; None: never within the wait
    faults: list[FaultOutcome]
    http_status: dict[int, int] = field(default_factory=dict)  # status -> count, load only
