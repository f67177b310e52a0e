"""Catalog messages: products, and the saga's stock reservations.

A reservation is identified by (order_id, operation_id). Reserve takes available units into
reserved; Commit turns reserved into sold; Release gives reserved units back; Return gives sold
units back (cancel, or a modify that lowers a line). Each command is answered exactly once per
operation, and a replayed command repeats the answer without changing stock again.
Release and Commit name the Reserve's operation_id; a Return has an operation_id of its own.
A Release that arrives before its Reserve voids it: the late Reserve is answered with
StockReservationFailed (reason OUT_OF_STOCK, no product ids) and reserves nothing.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Message
from contracts.topics import CATALOG_COMMANDS, CATALOG_EVENTS, CATALOG_REPLIES


class StockLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    product_id: str
    quantity: int = Field(gt=0)


class ReservedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    product_id: str
    quantity: int
    unit_price: int
    name: str
    category: str


class ProductCreated(Message):
    """A product was added to the catalog."""

    TOPIC = CATALOG_EVENTS
    KEY = "product_id"
    product_id: str
    name: str
    category: str
    price: int
    created_at: datetime


class ProductChanged(Message):
    """A product's name, category, price or stock changed."""

    TOPIC = CATALOG_EVENTS
    KEY = "product_id"
    product_id: str
    name: str
    category: str
    price: int
    stock: int


class ReserveStock(Message):
    """Reserve every line of an order, all or nothing."""

    TOPIC = CATALOG_COMMANDS
    KEY = "order_id"
    order_id: str
    operation_id: str
    lines: tuple[StockLine, ...]


class ReleaseStock(Message):
    """Give back the units an operation reserved (compensation)."""

    TOPIC = CATALOG_COMMANDS
    KEY = "order_id"
    order_id: str
    operation_id: str


class CommitStock(Message):
    """The order is paid: the operation's reserved units become sold."""

    TOPIC = CATALOG_COMMANDS
    KEY = "order_id"
    order_id: str
    operation_id: str


class ReturnStock(Message):
    """Sold units come back (cancel, or a modify lowering lines); never more than the order holds."""

    TOPIC = CATALOG_COMMANDS
    KEY = "order_id"
    order_id: str
    operation_id: str
    lines: tuple[StockLine, ...]


class StockReserved(Message):
    """Every line was reserved, at these prices."""

    TOPIC = CATALOG_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    lines: tuple[ReservedLine, ...]


class StockReservationFailed(Message):
    """Nothing was reserved; `product_ids` names the lines that could not be."""

    TOPIC = CATALOG_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    reason: Literal["OUT_OF_STOCK", "PRODUCT_NOT_FOUND"]
    product_ids: tuple[str, ...]


class StockReleased(Message):
    """The operation's reservation was given back."""

    TOPIC = CATALOG_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str


class StockReturned(Message):
    """The sold units are available again."""

    TOPIC = CATALOG_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
