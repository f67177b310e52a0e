"""HTTP shapes of the payment provider API."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Rate = Annotated[float, Field(strict=True, ge=0, le=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaymentIn(Strict):
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    # The upper bound only keeps the value inside BIGINT; KRW amounts never get near it.
    amount: Annotated[int, Field(strict=True, gt=0, le=1_000_000_000_000)]


class PaymentOut(BaseModel):
    payment_id: str
    order_id: str
    amount: int
    status: Literal["APPROVED", "DECLINED", "CANCELLED"]
    created_at: datetime
    cancelled_at: datetime | None = None


class BehaviorIn(Strict):
    """A PUT replaces the whole behavior: an omitted field goes back to its default (0)."""

    decline_rate: Rate = 0.0
    timeout_rate: Rate = 0.0
    latency_ms: Annotated[int, Field(strict=True, ge=0, le=60_000)] = 0


class BehaviorOut(BaseModel):
    decline_rate: float
    timeout_rate: float
    latency_ms: int
    updated_at: datetime | None
