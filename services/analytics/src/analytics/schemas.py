"""HTTP shapes of the analytics API."""

from datetime import date

from pydantic import BaseModel


class PopularProductOut(BaseModel):
    rank: int
    product_id: str
    name: str
    category: str
    quantity: int
    amount: int


class SalesBucketOut(BaseModel):
    period_start: date
    quantity: int
    amount: int
    orders: int
