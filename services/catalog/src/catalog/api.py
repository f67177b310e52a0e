"""Catalog routes: categories, product browsing, and admin create/restock."""

from typing import Annotated

from fastapi import APIRouter, Query

from catalog import service
from catalog.domain import CategoryCode, SoldOut, Sort
from catalog.schemas import NO_NUL, CategoryOut, ProductDetailOut, ProductIn, ProductOut, RestockIn
from catalog.service import ProductFilter, ProductView
from shopkit.app import ClockDep, Db
from shopkit.auth import AdminPrincipal
from shopkit.errors import Problem
from shopkit.openapi import define, problems
from shopkit.pagination import Cursor, Limit, Page

router = APIRouter(prefix="/api", tags=["catalog"])
define(
    "catalog",
    (404, "PRODUCT_NOT_FOUND", "No product with this id.", "no product 3f2a9c1e"),
    (
        409,
        "STOCK_LIMIT_EXCEEDED",
        "A restock would take the stock past its maximum.",
        "stock cannot exceed 2000000000",
    ),
    (
        422,
        "INVALID_PRICE_RANGE",
        "`min_price` is greater than `max_price`.",
        "min_price is greater than max_price",
    ),
)

Price = Annotated[int | None, Query(ge=0, le=10**12)]
Search = Annotated[
    str | None, Query(max_length=100, pattern=NO_NUL, description="name contains (any case)")
]


@router.get("/categories", response_model=list[CategoryOut])
async def categories(db: Db) -> list[CategoryOut]:
    """The fixed list of categories."""
    return [CategoryOut(code=code, name=name) for code, name in await service.list_categories(db)]


@router.get(
    "/products",
    response_model=Page[ProductOut],
    responses=problems("INVALID_PRICE_RANGE", "INVALID_CURSOR"),
)
async def products(
    db: Db,
    category: CategoryCode | None = None,
    q: Search = None,
    min_price: Price = None,
    max_price: Price = None,
    sold_out: SoldOut = "include",
    sort: Sort = "newest",
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[ProductOut]:
    """Products matching every given filter (price bounds inclusive); ties break by id."""
    if min_price is not None and max_price is not None and min_price > max_price:
        raise Problem(422, "INVALID_PRICE_RANGE", "min_price is greater than max_price")
    filters = ProductFilter(category, q, min_price, max_price, sold_out)
    rows, next_cursor = await service.list_products(
        db, filters=filters, sort=sort, limit=limit, cursor=cursor
    )
    return Page[ProductOut](items=[_out(p) for p in rows], next_cursor=next_cursor)


@router.get(
    "/products/{product_id}",
    response_model=ProductDetailOut,
    responses=problems((404, "PRODUCT_NOT_FOUND")),
)
async def product(product_id: str, db: Db) -> ProductDetailOut:
    """One product with its description and exact available stock; 404 PRODUCT_NOT_FOUND."""
    return _detail(await service.get_product(db, product_id=product_id))


@router.post("/products", status_code=201, response_model=ProductDetailOut)
async def create_product(
    body: ProductIn, db: Db, clock: ClockDep, _: AdminPrincipal
) -> ProductDetailOut:
    """Admin: add a product with its initial stock."""
    created = await service.create_product(db, **body.model_dump(), now=clock())
    return _detail(created)


@router.post(
    "/products/{product_id}/restock",
    response_model=ProductDetailOut,
    responses=problems((404, "PRODUCT_NOT_FOUND"), "STOCK_LIMIT_EXCEEDED"),
)
async def restock(
    product_id: str, body: RestockIn, db: Db, clock: ClockDep, _: AdminPrincipal
) -> ProductDetailOut:
    """Admin: add `quantity` units to the available stock."""
    done = await service.restock(db, product_id=product_id, quantity=body.quantity, now=clock())
    return _detail(done)


def _out(p: ProductView) -> ProductOut:
    return ProductOut(
        id=p.id,
        name=p.name,
        category=p.category,
        price=p.price,
        stock=p.stock,
        sold_out=p.sold_out,
        created_at=p.created_at,
    )


def _detail(p: ProductView) -> ProductDetailOut:
    return ProductDetailOut(**_out(p).model_dump(), description=p.description)
