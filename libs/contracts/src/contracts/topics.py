"""Topic names, partition counts and what each is keyed by.

Saga traffic is keyed by order id so that one order's commands and replies stay in order;
coupon issue requests are keyed by coupon id so that one partition gives each coupon a single
first-come-first-served line.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    key: str
    description: str

    @property
    def dead_letter(self) -> str:
        return f"{self.name}.dlt"


WALLET_EVENTS = Topic("wallet.events", 6, "user_id", "users registered, balances charged")
WALLET_COMMANDS = Topic("wallet.commands", 6, "order_id", "debit and refund orders from the saga")
WALLET_REPLIES = Topic("wallet.replies", 6, "order_id", "answers to wallet commands")

CATALOG_EVENTS = Topic("catalog.events", 6, "product_id", "products created and changed")
CATALOG_COMMANDS = Topic("catalog.commands", 6, "order_id", "stock reservations from the saga")
CATALOG_REPLIES = Topic("catalog.replies", 6, "order_id", "answers to stock commands")

COUPON_ISSUE_REQUESTS = Topic(
    "coupon.issue-requests", 6, "coupon_id", "first-come-first-served line per coupon"
)
COUPON_EVENTS = Topic("coupon.events", 6, "coupon_id", "coupons issued")
COUPON_COMMANDS = Topic("coupon.commands", 6, "order_id", "coupon use and release from the saga")
COUPON_REPLIES = Topic("coupon.replies", 6, "order_id", "answers to coupon commands")

ORDER_EVENTS = Topic("order.events", 6, "order_id", "orders paid, failed, cancelled, modified")

ALL_TOPICS: tuple[Topic, ...] = (
    WALLET_EVENTS,
    WALLET_COMMANDS,
    WALLET_REPLIES,
    CATALOG_EVENTS,
    CATALOG_COMMANDS,
    CATALOG_REPLIES,
    COUPON_ISSUE_REQUESTS,
    COUPON_EVENTS,
    COUPON_COMMANDS,
    COUPON_REPLIES,
    ORDER_EVENTS,
)
