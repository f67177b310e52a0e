"""Pure order rules: lines, totals, coupon discounts, the lines a modify adds or gives back."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

Status = Literal["PENDING", "PAID", "FAILED", "CANCELLED"]

FAILURE_CODES = (
    "OUT_OF_STOCK",
    "PRODUCT_NOT_FOUND",
    "INSUFFICIENT_BALANCE",
    "COUPON_NOT_USABLE",
    "PAYMENT_DECLINED",
    "PAYMENT_TIMEOUT",
)

# What a client may see an order become; the saga's internal steps stay behind PENDING.
ALLOWED_STATUS_CHANGES: dict[Status, tuple[Status, ...]] = {
    "PENDING": ("PAID", "FAILED"),
    "PAID": ("CANCELLED",),
    "FAILED": (),
    "CANCELLED": (),
}


def can_change(current: Status, new: Status) -> bool:
    return current == new or new in ALLOWED_STATUS_CHANGES[current]


@dataclass(frozen=True)
class Line:
    """One order line; price, name and category come from the catalog's reservation."""

    product_id: str
    quantity: int
    unit_price: int = 0
    name: str = ""
    category: str = ""

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class CouponTerms:
    """The terms a reserved coupon carries, so a modify can recompute the discount."""

    user_coupon_id: str
    discount_type: Literal["FIXED", "PERCENT"]
    discount_value: int
    min_order_amount: int


@dataclass(frozen=True)
class Debit:
    """Money one debit operation took, and how much of it was given back since."""

    operation_id: str
    amount: int
    refunded: int = 0

    @property
    def remaining(self) -> int:
        return self.amount - self.refunded


def subtotal(lines: Iterable[Line]) -> int:
    return sum(line.amount for line in lines)


def discount(terms: CouponTerms | None, subtotal_: int) -> int:
    """FIXED takes min(value, subtotal); PERCENT takes floor(subtotal * value / 100)."""
    if terms is None:
        return 0
    if terms.discount_type == "FIXED":
        return min(terms.discount_value, subtotal_)
    return subtotal_ * terms.discount_value // 100


def coupon_usable(terms: CouponTerms | None, subtotal_: int) -> bool:
    return terms is None or subtotal_ >= terms.min_order_amount


@dataclass(frozen=True)
class ModifyPlan:
    """What replacing an order's lines takes from and gives back to the shelf."""

    lines: tuple[Line, ...]  # the requested lines; prices filled once known
    more: tuple[Line, ...]  # units to reserve (new products, or higher quantities)
    fewer: tuple[Line, ...]  # units to return (dropped products, or lower quantities)


def plan_modify(current: Iterable[Line], requested: Iterable[tuple[str, int]]) -> ModifyPlan:
    """Diff the current lines against the requested (product_id, quantity) pairs."""
    have = {line.product_id: line for line in current}
    want = dict(requested)
    more, fewer, lines = [], [], []
    for product_id, quantity in want.items():
        old = have.get(product_id)
        held = old.quantity if old else 0
        if quantity > held:
            more.append(Line(product_id, quantity - held))
        elif quantity < held:
            fewer.append(Line(product_id, held - quantity))
        lines.append(replace(old, quantity=quantity) if old else Line(product_id, quantity))
    for product_id, old in have.items():
        if product_id not in want:
            fewer.append(replace(old, quantity=old.quantity))
    return ModifyPlan(lines=tuple(lines), more=tuple(more), fewer=tuple(fewer))


def price_lines(lines: Iterable[Line], priced: Iterable[Line]) -> tuple[Line, ...]:
    """Fill price, name and category of lines that have none from a reservation's lines."""
    known = {line.product_id: line for line in priced}
    out = []
    for line in lines:
        source = known.get(line.product_id)
        if line.unit_price == 0 and source is not None:
            line = replace(
                line, unit_price=source.unit_price, name=source.name, category=source.category
            )
        out.append(line)
    return tuple(out)


def split_refund(debits: Iterable[Debit], amount: int) -> list[tuple[Debit, int]]:
    """Which debits give back `amount`, newest first (a refund may not exceed what one took)."""
    parts: list[tuple[Debit, int]] = []
    left = amount
    for debit in reversed(list(debits)):
        if left <= 0:
            break
        take = min(left, debit.remaining)
        if take > 0:
            parts.append((debit, take))
            left -= take
    return parts
