"""Pure order rules: lines, totals, the lines a modify adds or gives back, refund splitting.

Discounts are the coupon service's rule: the order takes them from its replies."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

Status = Literal["PENDING", "PAID", "FAILED", "CANCELLED"]


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


@dataclass(frozen=True)
class ModifyPlan:
    """What replacing an order's lines takes from and gives back to the shelf."""

    lines: tuple[Line, ...]  # the requested lines; prices filled once known
    more: tuple[Line, ...]  # units to reserve (new products, or higher quantities)
    fewer: tuple[Line, ...]  # units to return (dropped products, or lower quantities)
    discount: int = 0  # what the order's coupon takes off the new lines, as the coupon service said


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
