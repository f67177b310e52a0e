"""Product use cases: create, restock, read and list. The saga's stock commands are in `stock`."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from catalog.domain import SORTS, SoldOut, Sort, escape_like
from contracts.catalog import ProductChanged, ProductCreated
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.outbox import publish
from shopkit.pagination import decode_cursor, encode_cursor

# Keeps available + a restock inside the INTEGER column, with room to spare.
MAX_STOCK = 2_000_000_000


@dataclass(frozen=True)
class ProductView:
    """A product as clients see it: `stock` is the available quantity at read time."""

    id: str
    name: str
    category: str
    price: int
    stock: int
    created_at: datetime
    description: str = ""

    @property
    def sold_out(self) -> bool:
        return self.stock == 0


@dataclass(frozen=True)
class ProductFilter:
    category: str | None = None
    q: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    sold_out: SoldOut = "include"


async def list_categories(db: Database) -> list[tuple[str, str]]:
    """The fixed categories as (code, name), in display order."""
    async with db.autocommit() as conn:
        rows = await conn.fetch("SELECT code, name FROM categories ORDER BY position")
    return [(row["code"], row["name"]) for row in rows]


async def create_product(
    db: Database,
    *,
    name: str,
    category: str,
    price: int,
    stock: int,
    description: str,
    now: datetime,
) -> ProductView:
    """Add a product with its initial stock and announce it."""
    product_id = str(uuid.uuid4())
    async with db.transaction() as tx:
        await tx.execute(
            "WITH product AS (INSERT INTO products"
            " (id, name, category, price, description, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id)"
            " INSERT INTO stock (product_id, available, reserved, sold, version)"
            " SELECT id, $7, 0, 0, 0 FROM product",
            product_id,
            name,
            category,
            price,
            description,
            now,
            stock,
        )
        created = ProductCreated(
            product_id=product_id, name=name, category=category, price=price, created_at=now
        )
        await publish(tx, created)
    return ProductView(product_id, name, category, price, stock, now, description)


async def restock(db: Database, *, product_id: str, quantity: int, now: datetime) -> ProductView:
    """Add units to what buyers can order; 404 PRODUCT_NOT_FOUND for an unknown product."""
    _require_storable(product_id)
    async with db.transaction() as tx:
        available = await tx.fetchval(
            "UPDATE stock SET available = available + $2, version = version + 1"
            " WHERE product_id = $1 AND available <= $3::integer - $2 RETURNING available",
            product_id,
            quantity,
            MAX_STOCK,
        )
        row = await tx.fetchrow(
            f"UPDATE products p SET updated_at = $2 WHERE p.id = $1 RETURNING {_PRODUCT}",
            product_id,
            now,
        )
        if row is None:
            raise Problem(404, "PRODUCT_NOT_FOUND", f"no product {product_id}")
        if available is None:
            raise Problem(409, "STOCK_LIMIT_EXCEEDED", f"stock cannot exceed {MAX_STOCK}")
        product = _view(row, available)
        changed = ProductChanged(
            product_id=product.id,
            name=product.name,
            category=product.category,
            price=product.price,
            stock=available,
        )
        await publish(tx, changed)
    return product


async def get_product(db: Database, *, product_id: str) -> ProductView:
    """One product with its description; 404 PRODUCT_NOT_FOUND when unknown."""
    _require_storable(product_id)
    async with db.autocommit() as conn:
        row = await conn.fetchrow(
            f"SELECT {_PRODUCT}, s.available FROM products p"
            " JOIN stock s ON s.product_id = p.id WHERE p.id = $1",
            product_id,
        )
    if row is None:
        raise Problem(404, "PRODUCT_NOT_FOUND", f"no product {product_id}")
    return _view(row, row["available"])


async def list_products(
    db: Database, *, filters: ProductFilter, sort: Sort, limit: int, cursor: str | None
) -> tuple[list[ProductView], str | None]:
    """A page of products matching `filters` in `sort` order, ties broken by id ascending."""
    key = SORTS[sort]
    column = f"p.{key.column}"
    where, params = _conditions(filters)
    after = _decode(cursor, sort)
    if after is not None:
        value, last_id = after
        params += [value, last_id]
        v, last = f"${len(params) - 1}", f"${len(params)}"
        # The redundant `<=`/`>=` bound lets the planner turn the keyset into an index range.
        bound, beyond = ("<=", "<") if key.descending else (">=", ">")
        where.append(
            f"{column} {bound} {v} AND ({column} {beyond} {v} OR ({column} = {v} AND p.id > {last}))"
        )
    params.append(limit + 1)
    query = (
        "SELECT p.id, p.name, p.category, p.price, p.created_at, s.available"
        " FROM products p JOIN stock s ON s.product_id = p.id"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {column} {'DESC' if key.descending else 'ASC'}, p.id ASC"
        + f" LIMIT ${len(params)}"
    )
    async with db.autocommit() as conn:
        rows = await conn.fetch(query, *params)
    items = [
        ProductView(r["id"], r["name"], r["category"], r["price"], r["available"], r["created_at"])
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last_item = items[-1]
        last_value = getattr(last_item, key.column)
        encoded = last_value.isoformat() if isinstance(last_value, datetime) else last_value
        next_cursor = encode_cursor([sort, encoded, last_item.id])
    return items, next_cursor


def _conditions(filters: ProductFilter) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of `filters` and their parameters, numbered from $1."""
    where: list[str] = []
    params: list[Any] = []

    def holds(condition: str, value: Any) -> None:
        params.append(value)
        where.append(condition.format(f"${len(params)}"))

    if filters.category is not None:
        holds("p.category = {}", filters.category)
    if filters.q:
        holds("p.name ILIKE {} ESCAPE '\\'", f"%{escape_like(filters.q)}%")
    if filters.min_price is not None:
        holds("p.price >= {}", filters.min_price)
    if filters.max_price is not None:
        holds("p.price <= {}", filters.max_price)
    if filters.sold_out == "exclude":
        where.append("s.available > 0")
    elif filters.sold_out == "only":
        where.append("s.available = 0")
    return where, params


def _decode(cursor: str | None, sort: Sort) -> tuple[Any, str] | None:
    """The (sort value, id) a cursor points after; 422 INVALID_CURSOR if it is for another sort."""
    values = decode_cursor(cursor, size=3)
    if values is None:
        return None
    cursor_sort, value, last_id = values
    column = SORTS[sort].column
    try:
        if cursor_sort != sort or not isinstance(last_id, str):
            raise ValueError("cursor of another listing")
        if column == "created_at":
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("cursor time without offset")
            return moment, last_id
        if column == "price" and isinstance(value, int) and not isinstance(value, bool):
            return value, last_id
        if column == "name" and isinstance(value, str):
            return value, last_id
        raise ValueError("cursor value of the wrong type")
    except (TypeError, ValueError) as exc:
        raise Problem(422, "INVALID_CURSOR", "cursor is not valid for this sort") from exc


def _require_storable(product_id: str) -> None:
    # No stored id contains NUL, and PostgreSQL would reject it as a parameter (a 500).
    if "\x00" in product_id:
        raise Problem(404, "PRODUCT_NOT_FOUND", "no such product")


_PRODUCT = "p.id, p.name, p.category, p.price, p.description, p.created_at"


def _view(row: Any, available: int) -> ProductView:
    return ProductView(
        id=row["id"],
        name=row["name"],
        category=row["category"],
        price=row["price"],
        stock=available,
        created_at=row["created_at"],
        description=row["description"],
    )
