"""HTTP shapes of the catalog API."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from catalog.domain import CategoryCode

MAX_PRICE = 1_000_000_000
MAX_QUANTITY = 1_000_000


# PostgreSQL text cannot hold NUL: refuse it as bad input rather than fail in the database.
NO_NUL = r"^[^\x00]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CategoryOut(BaseModel):
    code: str
    name: str


class ProductOut(BaseModel):
    id: str
    name: str
    category: str
    price: int
    stock: int = Field(description="units a buyer can still order now (reserved units excluded)")
    sold_out: bool
    created_at: datetime


class ProductDetailOut(ProductOut):
    description: str


class ProductIn(Strict):
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL),
    ]
    category: CategoryCode
    price: Annotated[int, Field(strict=True, ge=0, le=MAX_PRICE)]
    stock: Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]
    description: Annotated[str, StringConstraints(max_length=5_000, pattern=NO_NUL)] = ""


class RestockIn(Strict):
    quantity: Annotated[int, Field(strict=True, gt=0, le=MAX_QUANTITY)]
