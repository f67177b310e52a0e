"""Order events: what analytics and anyone else may learn about orders."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.base import Message
from contracts.topics import ORDER_EVENTS


class SoldLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    product_id: str
    name: str
    category: str
    quantity: int
    unit_price: int


class OrderPaid(Message):
    """An order reached PAID; its lines count as sales on the day of `paid_at`."""

    TOPIC = ORDER_EVENTS
    KEY = "order_id"
    order_id: str
    user_id: str
    lines: tuple[SoldLine, ...]
    subtotal: int
    discount: int
    total: int
    paid_at: datetime


class OrderFailed(Message):
    """An order ended FAILED; everything it took was given back."""

    TOPIC = ORDER_EVENTS
    KEY = "order_id"
    order_id: str
    user_id: str
    failure_code: Literal[
        "OUT_OF_STOCK",
        "PRODUCT_NOT_FOUND",
        "INSUFFICIENT_BALANCE",
        "COUPON_NOT_USABLE",
        "PAYMENT_DECLINED",
        "PAYMENT_TIMEOUT",
    ]
    failed_at: datetime


class OrderCancelled(Message):
    """A paid order was cancelled; its sales on the day of `paid_at` are taken back."""

    TOPIC = ORDER_EVENTS
    KEY = "order_id"
    order_id: str
    user_id: str
    lines: tuple[SoldLine, ...]
    total: int
    paid_at: datetime
    cancelled_at: datetime


class OrderModified(Message):
    """A paid order's lines were replaced; sales on the day of `paid_at` change by the difference."""

    TOPIC = ORDER_EVENTS
    KEY = "order_id"
    order_id: str
    user_id: str
    previous_lines: tuple[SoldLine, ...]
    lines: tuple[SoldLine, ...]
    total: int
    paid_at: datetime
    modified_at: datetime
