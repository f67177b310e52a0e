"""HTTP shapes of the order API."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Id = Annotated[str, StringConstraints(min_length=1, max_length=36)]


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: Id
    quantity: Annotated[int, Field(strict=True, ge=1, le=1000)]


def _distinct(items: list[ItemIn]) -> list[ItemIn]:
    if len({i.product_id for i in items}) != len(items):
        raise ValueError("the same product appears twice")
    return items


class PlaceOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Id
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=50)]
    coupon_id: Id | None = None

    _check = field_validator("items")(_distinct)


class ModifyOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=50)]

    _check = field_validator("items")(_distinct)


class ItemOut(BaseModel):
    product_id: str
    quantity: int
    unit_price: int


class OrderOut(BaseModel):
    """An order; prices appear once the catalog reserved its stock (0 until then)."""

    id: str
    user_id: str
    status: Literal["PENDING", "PAID", "FAILED", "CANCELLED"]
    items: list[ItemOut]
    subtotal: int
    discount: int
    total: int
    coupon_id: str | None
    failure_code: str | None
    created_at: datetime
    updated_at: datetime


class HistoryOut(BaseModel):
    status: str
    event: str
    detail: str
    at: datetime
    # The order's trace (32 hex digits) in the trace viewer; None when it was placed untraced.
    trace_id: str | None = None


class ParkedOrderOut(BaseModel):
    """An order whose saga stopped retrying: its step, why, and its history (oldest first)."""

    id: str
    user_id: str
    status: str
    step: str
    operation: str | None
    attempts: int
    parked_at: datetime
    last_error: str | None
    # The order's trace in the trace viewer; None when it was placed untraced.
    trace_id: str | None = None
    history: list[HistoryOut]


class RetryOut(BaseModel):
    id: str
    retried_at: datetime
