"""Product use cases: create, restock, read and list. Stock commands of the saga are in stock.py."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVarTuple

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.domain import SORTS, SoldOut, Sort, escape_like
from catalog.models import Category, Product, Stock
from contracts.catalog import ProductChanged, ProductCreated
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.outbox import add_message
from shopkit.pagination import decode_cursor, encode_cursor

Ts = TypeVarTuple("Ts")

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


async def list_categories(db: Database) -> list[Category]:
    """The fixed categories, in display order."""
    async with db.sessions() as session:
        return list((await session.execute(select(Category).order_by(Category.position))).scalars())


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
    product = Product(
        id=str(uuid.uuid4()),
        name=name,
        category=category,
        price=price,
        description=description,
        created_at=now,
        updated_at=now,
    )
    async with db.transaction() as session:
        session.add(product)
        await session.flush()
        session.add(Stock(product_id=product.id, available=stock, reserved=0, sold=0, version=0))
        await add_message(
            session,
            ProductCreated(
                product_id=product.id, name=name, category=category, price=price, created_at=now
            ),
        )
    return _view(product, stock, detail=True)


async def restock(db: Database, *, product_id: str, quantity: int, now: datetime) -> ProductView:
    """Add units to what buyers can order; 404 PRODUCT_NOT_FOUND for an unknown product."""
    _require_storable(product_id)
    async with db.transaction() as session:
        available = (
            await session.execute(
                update(Stock)
                .where(Stock.product_id == product_id, Stock.available <= MAX_STOCK - quantity)
                .values(available=Stock.available + quantity, version=Stock.version + 1)
                .returning(Stock.available)
            )
        ).scalar_one_or_none()
        product = await session.get(Product, product_id)
        if product is None:
            raise Problem(404, "PRODUCT_NOT_FOUND", f"no product {product_id}")
        if available is None:
            raise Problem(409, "STOCK_LIMIT_EXCEEDED", f"stock cannot exceed {MAX_STOCK}")
        product.updated_at = now
        await _announce_change(session, product, available)
    return _view(product, available, detail=True)


async def _announce_change(session: AsyncSession, product: Product, available: int) -> None:
    await add_message(
        session,
        ProductChanged(
            product_id=product.id,
            name=product.name,
            category=product.category,
            price=product.price,
            stock=available,
        ),
    )


async def get_product(db: Database, *, product_id: str) -> ProductView:
    """One product with its description; 404 PRODUCT_NOT_FOUND when unknown."""
    _require_storable(product_id)
    async with db.sessions() as session:
        row = (
            await session.execute(
                select(Product, Stock.available)
                .join(Stock, Stock.product_id == Product.id)
                .where(Product.id == product_id)
            )
        ).one_or_none()
    if row is None:
        raise Problem(404, "PRODUCT_NOT_FOUND", f"no product {product_id}")
    return _view(row[0], row[1], detail=True)


async def list_products(
    db: Database, *, filters: ProductFilter, sort: Sort, limit: int, cursor: str | None
) -> tuple[list[ProductView], str | None]:
    """A page of products matching `filters` in `sort` order, ties broken by id ascending."""
    key = SORTS[sort]
    column = getattr(Product, key.column)
    query = _filtered(
        select(
            Product.id,
            Product.name,
            Product.category,
            Product.price,
            Product.created_at,
            Stock.available,
        ).join(Stock, Stock.product_id == Product.id),
        filters,
    )
    after = _decode(cursor, sort)
    if after is not None:
        value, last_id = after
        # The redundant `<=`/`>=` bound lets the planner turn the keyset into an index range.
        if key.descending:
            query = query.where(
                column <= value, or_(column < value, and_(column == value, Product.id > last_id))
            )
        else:
            query = query.where(
                column >= value, or_(column > value, and_(column == value, Product.id > last_id))
            )
    order = column.desc() if key.descending else column.asc()
    query = query.order_by(order, Product.id.asc()).limit(limit + 1)
    async with db.sessions() as session:
        rows = (await session.execute(query)).all()
    items = [
        ProductView(
            id=r.id,
            name=r.name,
            category=r.category,
            price=r.price,
            stock=r.available,
            created_at=r.created_at,
        )
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        value = getattr(last, key.column)
        encoded = value.isoformat() if isinstance(value, datetime) else value
        next_cursor = encode_cursor([sort, encoded, last.id])
    return items, next_cursor


def _filtered(query: Select[*Ts], filters: ProductFilter) -> Select[*Ts]:
    if filters.category is not None:
        query = query.where(Product.category == filters.category)
    if filters.q:
        query = query.where(Product.name.ilike(f"%{escape_like(filters.q)}%", escape="\\"))
    if filters.min_price is not None:
        query = query.where(Product.price >= filters.min_price)
    if filters.max_price is not None:
        query = query.where(Product.price <= filters.max_price)
    if filters.sold_out == "exclude":
        query = query.where(Stock.available > 0)
    elif filters.sold_out == "only":
        query = query.where(Stock.available == 0)
    return query


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


def _view(product: Product, available: int, *, detail: bool) -> ProductView:
    return ProductView(
        id=product.id,
        name=product.name,
        category=product.category,
        price=product.price,
        stock=available,
        created_at=product.created_at,
        description=product.description if detail else "",
    )
