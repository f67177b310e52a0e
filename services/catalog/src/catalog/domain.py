"""Pure catalog rules: categories, sorts, and how reservations move between states."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

CategoryCode = Literal[
    "ELECTRONICS", "FASHION", "FOOD", "BOOKS", "HOME", "SPORTS", "BEAUTY", "TOYS"
]

# The fixed list the first migration seeds; the order is the order GET /api/categories shows.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("ELECTRONICS", "전자제품"),
    ("FASHION", "패션"),
    ("FOOD", "식품"),
    ("BOOKS", "도서"),
    ("HOME", "홈/리빙"),
    ("SPORTS", "스포츠"),
    ("BEAUTY", "뷰티"),
    ("TOYS", "완구"),
)

Sort = Literal["newest", "price_asc", "price_desc", "name"]
SoldOut = Literal["include", "exclude", "only"]


@dataclass(frozen=True)
class SortKey:
    """A listing order: one product column, then the product id ascending to break ties."""

    column: Literal["created_at", "price", "name"]
    descending: bool


SORTS: dict[str, SortKey] = {
    "newest": SortKey("created_at", descending=True),
    "price_asc": SortKey("price", descending=False),
    "price_desc": SortKey("price", descending=True),
    "name": SortKey("name", descending=False),
}


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (backslash is the escape character)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def merge_lines(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Quantities per product, in product-id order: the order rows are locked in."""
    merged: dict[str, int] = {}
    for product_id, quantity in lines:
        merged[product_id] = merged.get(product_id, 0) + quantity
    return dict(sorted(merged.items()))


def short_products(wanted: Mapping[str, int], available: Mapping[str, int]) -> list[str]:
    """The products whose available quantity cannot cover the wanted one, in id order."""
    return sorted(pid for pid, q in wanted.items() if available.get(pid, 0) < q)


def capped_returns(requested: Mapping[str, int], sold: Mapping[str, int]) -> dict[str, int]:
    """What may come back to the shelf: never more than the order still holds as sold."""
    capped = {pid: min(q, max(0, sold.get(pid, 0))) for pid, q in requested.items()}
    return {pid: q for pid, q in sorted(capped.items()) if q > 0}


class Status(StrEnum):
    """Where one reservation (operation) stands."""

    RESERVED = "RESERVED"
    FAILED = "FAILED"
    VOIDED = "VOIDED"  # released before its Reserve arrived: a late Reserve is refused
    RELEASED = "RELEASED"
    COMMITTED = "COMMITTED"


@dataclass(frozen=True)
class Transition:
    status: Status
    moves_stock: bool  # whether the reserved units move (back to available, or to sold)


def on_release(status: Status | None) -> Transition:
    """Release gives reserved units back once; it never touches sold units."""
    if status is None:
        return Transition(Status.VOIDED, moves_stock=False)
    if status is Status.RESERVED:
        return Transition(Status.RELEASED, moves_stock=True)
    return Transition(status, moves_stock=False)


def on_commit(status: Status) -> Transition:
    """Commit turns reserved units into sold once; anything else stays as it is."""
    if status is Status.RESERVED:
        return Transition(Status.COMMITTED, moves_stock=True)
    return Transition(status, moves_stock=False)
