"""Catalog HTTP API against real PostgreSQL (and the outbox to real Kafka)."""

import itertools
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopdev.testing import KafkaProbe
from shopkit.clock import FrozenClock

SERVICE_DIR = Path(__file__).resolve().parents[1]


async def listing(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        page = await client.get("/api/products", params=query)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


async def test_categories_are_the_fixed_seeded_list(catalog: httpx.AsyncClient) -> None:
    response = await catalog.get("/api/categories")
    assert response.status_code == 200
    codes = [c["code"] for c in response.json()]
    assert codes == ["ELECTRONICS", "FASHION", "FOOD", "BOOKS", "HOME", "SPORTS", "BEAUTY", "TOYS"]
    assert all(c["name"] for c in response.json())


async def test_admin_creates_and_anyone_reads_a_product(
    catalog: httpx.AsyncClient, create_product, clock: FrozenClock
) -> None:
    created = await create_product(
        name="Kafka 책", category="BOOKS", price=32_000, stock=7, description="event-driven"
    )
    read = await catalog.get(f"/api/products/{created['id']}")

    assert read.status_code == 200
    assert read.json() == created
    assert created | {"id": "-", "created_at": "-"} == {
        "id": "-",
        "name": "Kafka 책",
        "category": "BOOKS",
        "price": 32_000,
        "stock": 7,
        "sold_out": False,
        "created_at": "-",
        "description": "event-driven",
    }
    assert created["created_at"].startswith(clock().isoformat()[:19])
    uuid.UUID(created["id"])


@pytest.mark.parametrize("product_id", [str(uuid.uuid4()), "popular", "x" * 300])
async def test_unknown_product_is_404(catalog: httpx.AsyncClient, product_id: str) -> None:
    response = await catalog.get(f"/api/products/{product_id}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "PRODUCT_NOT_FOUND"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"sort": "cheapest"}, "VALIDATION_ERROR"),
        ({"category": "CARS"}, "VALIDATION_ERROR"),
        ({"category": "books"}, "VALIDATION_ERROR"),
        ({"sold_out": "maybe"}, "VALIDATION_ERROR"),
        ({"min_price": "-1"}, "VALIDATION_ERROR"),
        ({"max_price": "ten"}, "VALIDATION_ERROR"),
        ({"min_price": "1.5"}, "VALIDATION_ERROR"),
        ({"limit": "0"}, "VALIDATION_ERROR"),
        ({"limit": "101"}, "VALIDATION_ERROR"),
        ({"cursor": "not-a-cursor"}, "INVALID_CURSOR"),
        ({"min_price": "10", "max_price": "9"}, "INVALID_PRICE_RANGE"),
    ],
)
async def test_bad_query_values_are_422(
    catalog: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    response = await catalog.get("/api/products", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


async def test_a_cursor_from_another_sort_is_refused(
    catalog: httpx.AsyncClient, create_product, tag: str
) -> None:
    for _ in range(2):
        await create_product(name=f"{tag} item")
    page = await catalog.get("/api/products", params={"q": tag, "limit": 1, "sort": "name"})
    cursor = page.json()["next_cursor"]
    assert cursor is not None
    other = await catalog.get(
        "/api/products", params={"q": tag, "sort": "price_asc", "cursor": cursor}
    )
    assert (other.status_code, other.json()["code"]) == (422, "INVALID_CURSOR")


@pytest.mark.parametrize(
    "change",
    [
        {"price": -1},
        {"price": 1.5},
        {"price": "100"},
        {"stock": -1},
        {"category": "CARS"},
        {"name": ""},
        {"sold_out": False},
        {"id": "chosen-by-client"},
    ],
)
async def test_bad_product_bodies_are_422(
    catalog: httpx.AsyncClient, admin: dict[str, str], change: dict[str, Any], tag: str
) -> None:
    body = {"name": tag, "category": "FOOD", "price": 100, "stock": 1, "description": ""}
    response = await catalog.post("/api/products", json=body | change, headers=admin)
    assert response.status_code == 422
    assert (await listing(catalog, q=tag)) == []


async def test_only_an_admin_creates_and_restocks(
    catalog: httpx.AsyncClient, user: dict[str, str], create_product, tag: str
) -> None:
    body = {"name": tag, "category": "FOOD", "price": 100, "stock": 1, "description": ""}
    anonymous = await catalog.post("/api/products", json=body)
    as_user = await catalog.post("/api/products", json=body, headers=user)
    product = await create_product(stock=1)
    restock = await catalog.post(
        f"/api/products/{product['id']}/restock", json={"quantity": 5}, headers=user
    )
    assert [anonymous.status_code, as_user.status_code, restock.status_code] == [401, 403, 403]
    assert (await listing(catalog, q=tag)) == []
    assert (await catalog.get(f"/api/products/{product['id']}")).json()["stock"] == 1


async def test_restock_adds_to_the_available_stock(
    catalog: httpx.AsyncClient, admin: dict[str, str], create_product
) -> None:
    product = await create_product(stock=0)
    done = await catalog.post(
        f"/api/products/{product['id']}/restock", json={"quantity": 4}, headers=admin
    )
    bad = await catalog.post(
        f"/api/products/{product['id']}/restock", json={"quantity": 0}, headers=admin
    )
    ghost = await catalog.post(
        f"/api/products/{uuid.uuid4()}/restock", json={"quantity": 1}, headers=admin
    )
    assert done.status_code == 200 and done.json()["stock"] == 4
    assert done.json()["sold_out"] is False
    assert bad.status_code == 422
    assert (ghost.status_code, ghost.json()["code"]) == (404, "PRODUCT_NOT_FOUND")
    assert (await catalog.get(f"/api/products/{product['id']}")).json()["stock"] == 4


async def test_each_filter_and_inclusive_price_bounds(
    catalog: httpx.AsyncClient, create_product, tag: str
) -> None:
    made = {
        "cheap": await create_product(name=f"{tag} Cheap Pen", category="BOOKS", price=1_000),
        "low": await create_product(name=f"{tag} low mug", category="HOME", price=5_000),
        "mid": await create_product(name=f"{tag} MID lamp", category="HOME", price=7_500),
        "high": await create_product(name=f"{tag} high tv", category="ELECTRONICS", price=9_000),
        "gone": await create_product(name=f"{tag} gone toy", category="TOYS", price=5_000, stock=0),
    }
    ids = {name: p["id"] for name, p in made.items()}

    async def found(**params: Any) -> set[str]:
        return {p["id"] for p in await listing(catalog, q=tag, **params)}

    assert await found() == set(ids.values())
    assert await found(category="HOME") == {ids["low"], ids["mid"]}
    assert await found(min_price=5_000, max_price=9_000) == {
        ids["low"],
        ids["mid"],
        ids["high"],
        ids["gone"],
    }
    assert await found(min_price=5_001) == {ids["mid"], ids["high"]}
    assert await found(max_price=1_000) == {ids["cheap"]}
    assert await found(min_price=7_500, max_price=7_500) == {ids["mid"]}
    assert await found(sold_out="exclude") == set(ids.values()) - {ids["gone"]}
    assert await found(sold_out="only") == {ids["gone"]}
    assert await found(category="HOME", max_price=6_000, sold_out="exclude") == {ids["low"]}
    # q is "name contains", case-insensitive, and LIKE wildcards in it are literal.
    assert {p["id"] for p in await listing(catalog, q=f"{tag} mid")} == {ids["mid"]}
    assert {p["id"] for p in await listing(catalog, q=f"{tag.upper()} LOW")} == {ids["low"]}
    assert await listing(catalog, q=f"{tag}%") == []
    [gone] = await listing(catalog, q=tag, sold_out="only")
    assert (gone["stock"], gone["sold_out"]) == (0, True)


SORT_KEYS = {
    "newest": lambda p: (-_micros(p["created_at"]), p["id"]),
    "price_asc": lambda p: (p["price"], p["id"]),
    "price_desc": lambda p: (-p["price"], p["id"]),
    "name": lambda p: (p["name"].encode(), p["id"]),
}


def _micros(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp)
    return int(moment.timestamp() * 1_000_000)


@pytest.mark.parametrize("sort", list(SORT_KEYS))
async def test_every_sort_is_strictly_ordered_with_ties_by_id(
    catalog: httpx.AsyncClient, create_product, tag: str, clock: FrozenClock, sort: str
) -> None:
    # Equal prices, equal names and equal creation times, so the id has to break ties.
    for i, price in enumerate([3_000, 1_000, 3_000, 2_000, 3_000, 1_000]):
        if i % 2 == 0:
            clock.advance(seconds=1)
        await create_product(name=f"{tag} {'b' if i % 3 else 'a'}", price=price)

    items = await listing(catalog, q=tag, sort=sort, limit=2)

    keys = [SORT_KEYS[sort](p) for p in items]
    assert len(items) == 6
    assert all(a < b for a, b in itertools.pairwise(keys)), items


@pytest.mark.parametrize("sort", list(SORT_KEYS))
async def test_pages_have_no_gaps_or_repeats_while_products_are_added(
    catalog: httpx.AsyncClient, create_product, tag: str, clock: FrozenClock, sort: str
) -> None:
    before = []
    for i in range(8):
        clock.advance(seconds=1)
        before.append(await create_product(name=f"{tag} {i % 4}", price=1_000 * (i % 4)))
    seen: list[str] = []
    cursor = None
    for page_no in range(20):
        params = {"q": tag, "sort": sort, "limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await catalog.get("/api/products", params=params)).json()
        seen += [p["id"] for p in page["items"]]
        # Inserts land before, inside and after the part already read.
        clock.advance(seconds=1)
        await create_product(name=f"{tag} {page_no % 4}", price=1_000 * (page_no % 4))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a product was listed twice"
    assert {p["id"] for p in before} <= set(seen), "a product was skipped"


async def test_product_events_are_published(
    catalog: httpx.AsyncClient, admin: dict[str, str], create_product, kafka: KafkaProbe
) -> None:
    product = await create_product(name="이벤트 상품", category="TOYS", price=4_000, stock=2)
    await catalog.post(
        f"/api/products/{product['id']}/restock", json={"quantity": 3}, headers=admin
    )

    created = await kafka.wait_for(
        "catalog.events", lambda e: e["type"] == "ProductCreated" and e["key"] == product["id"]
    )
    changed = await kafka.wait_for(
        "catalog.events", lambda e: e["type"] == "ProductChanged" and e["key"] == product["id"]
    )

    assert created[0]["payload"] | {"created_at": None} == {
        "product_id": product["id"],
        "name": "이벤트 상품",
        "category": "TOYS",
        "price": 4_000,
        "created_at": None,
    }
    assert changed[0]["payload"]["stock"] == 5


async def test_a_nul_character_is_bad_input_not_a_crash(
    catalog: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    search = await catalog.get("/api/products", params={"q": "a\x00b"})
    body = {"name": "a\x00b", "category": "FOOD", "price": 1, "stock": 1, "description": "\x00"}
    create = await catalog.post("/api/products", json=body, headers=admin)
    detail = await catalog.get("/api/products/a%00b")
    assert (search.status_code, create.status_code) == (422, 422)
    assert detail.status_code == 404
