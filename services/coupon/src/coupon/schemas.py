"""HTTP shapes of the coupon API."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from coupon import domain
from coupon.domain import DiscountType, Status
from coupon.issue_queue import UserCouponDetail


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CouponIn(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    discount_type: DiscountType
    discount_value: Annotated[int, Field(strict=True, ge=1, le=1_000_000_000)]
    total_quantity: Annotated[int, Field(strict=True, ge=1, le=10_000_000)]
    min_order_amount: Annotated[int, Field(strict=True, ge=0, le=1_000_000_000_000)] = 0
    valid_days: Annotated[int, Field(strict=True, ge=1, le=365)] = 30


class CouponOut(BaseModel):
    id: str
    name: str
    discount_type: DiscountType
    discount_value: int
    total_quantity: int
    issued_quantity: int
    min_order_amount: int
    valid_days: int
    created_at: datetime


class IssueIn(Strict):
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=36)]


class UserCouponOut(BaseModel):
    id: str
    coupon_id: str
    user_id: str
    name: str
    discount_type: DiscountType
    discount_value: int
    status: Status
    issued_at: datetime | None
    expires_at: datetime | None
    used_at: datetime | None
    order_id: str | None


StatusFilter = Literal["PENDING", "ISSUED", "USED", "EXPIRED", "REVOKED", "REJECTED"]


def user_coupon_out(held: UserCouponDetail, now: datetime) -> UserCouponOut:
    row, card = held.row, held.definition
    return UserCouponOut(
        id=row.id,
        coupon_id=row.coupon_id,
        user_id=row.user_id,
        name=card.name,
        discount_type=card.discount_type,
        discount_value=card.discount_value,
        status=domain.visible_status(row.status, row.expires_at, now),
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        order_id=row.order_id,
    )
