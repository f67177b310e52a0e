"""HTTP shapes of the wallet API."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    email: Email
    password: Annotated[str, StringConstraints(min_length=8, max_length=200)]


class UserOut(BaseModel):
    id: str
    name: str
    email: str


class LoginIn(Strict):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class ChargeIn(Strict):
    amount: Annotated[int, Field(strict=True, gt=0, le=10_000_000)]


class BalanceOut(BaseModel):
    user_id: str
    balance: int


class ChargeOut(BalanceOut):
    transaction_id: str


class TransactionOut(BaseModel):
    id: str
    type: Literal["CHARGE", "PAYMENT", "REFUND"]
    amount: int
    balance_after: int
    order_id: str | None
    created_at: datetime
