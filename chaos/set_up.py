"""The seeded scenario's start, through the gateway: products with known stock, shoppers with
charged balances, coupons issued to some, and an order for the probe to read.

Every choice comes from the run's `random.Random(seed)`, so a seed names a scenario.
"""

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos.stack import ADMIN_PASSWORD

CATEGORIES = ("ELECTRONICS", "FASHION", "FOOD", "BOOKS", "HOME", "SPORTS", "BEAUTY", "TOYS")
PASSWORD = "chaos-password"


@dataclass
class Shopper:
    id: str
    headers: dict[str, str]
    coupons: list[str] = field(default_factory=list)  # user-coupon ids issued to them


@dataclass
class Setup:
    """What the scenario created, as the auditor needs it."""

    admin: dict[str, str]
    products: dict[str, int]  # product id -> price
    start_stock: dict[str, int]
    shoppers: list[Shopper]
    charged: dict[str, int]
    coupons: list[str]
    probe: Shopper
    probe_order: str
    probe_product: str
    drop: str | None = None  # a coupon left for the load to issue (first come, first served)


class Refused(RuntimeError):
    """A setup call the shop refused: the scenario cannot go on."""


def _ok(response: httpx.Response, *codes: int) -> Any:
    if response.status_code not in codes:
        raise Refused(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return response.json()


async def _patiently(client: httpx.AsyncClient, path: str, body: dict[str, str]) -> httpx.Response:
    """POST as a well-behaved client: a 503 (the wallet's password hashing is full while dozens
    of shoppers sign up at once) is retried after its Retry-After, within a deadline."""
    deadline = time.monotonic() + 60
    while True:
        answer = await client.post(path, json=body)
        if answer.status_code != 503 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))


async def _shopper(client: httpx.AsyncClient, admin: dict[str, str], balance: int) -> Shopper:
    email = f"chaos-{uuid.uuid4().hex[:12]}@example.com"
    user = _ok(
        await _patiently(
            client, "/api/users", {"name": "Chaos", "email": email, "password": PASSWORD}
        ),
        201,
    )
    login = _ok(
        await _patiently(client, "/api/auth/login", {"email": email, "password": PASSWORD}), 200
    )
    shopper = Shopper(user["id"], {"Authorization": f"Bearer {login['access_token']}"})
    if balance:
        _ok(
            await client.post(
                f"/api/users/{shopper.id}/balance/charge", json={"amount": balance}, headers=admin
            ),
            200,
        )
    return shopper


async def set_up(
    client: httpx.AsyncClient, rng: random.Random, *, shoppers: int, drop: int = 0
) -> Setup:
    """Products with known stock, shoppers with charged balances, coupons issued to some, and
    with `drop` a coupon of that many for the load to issue."""
    login = _ok(
        await _patiently(
            client, "/api/auth/login", {"email": "admin@shop.local", "password": ADMIN_PASSWORD}
        ),
        200,
    )
    admin = {"Authorization": f"Bearer {login['access_token']}"}
    products: dict[str, int] = {}
    start_stock: dict[str, int] = {}
    for i in range(rng.randint(6, 9)):
        # Plenty of stock, but one product scarce: some orders fail OUT_OF_STOCK on purpose.
        price = rng.randrange(1_000, 20_000, 100)
        stock = rng.randint(150, 250) if i == 0 else rng.randint(3_000, 6_000)
        body = {
            "name": f"Chaos product {i}",
            "category": rng.choice(CATEGORIES),
            "price": price,
            "stock": stock,
            "description": "made by the chaos suite",
        }
        created = _ok(await client.post("/api/products", json=body, headers=admin), 201)
        products[created["id"]] = price
        start_stock[created["id"]] = stock
    # Most shoppers can pay for a whole run; a few run dry and see INSUFFICIENT_BALANCE.
    balances = [
        rng.randrange(100_000, 300_000, 1_000)
        if i % 8 == 0
        else rng.randrange(8_000_000, 10_000_000, 1_000)
        for i in range(shoppers)
    ]
    people = list(await asyncio.gather(*[_shopper(client, admin, balance) for balance in balances]))
    charged = {s.id: b for s, b in zip(people, balances, strict=True)}
    coupons = []
    for kind, value, total in (("FIXED", rng.choice((3_000, 5_000)), 12), ("PERCENT", 10, 8)):
        body = {
            "name": f"Chaos {kind} {value}",
            "discount_type": kind,
            "discount_value": value,
            "total_quantity": total,
            "min_order_amount": 10_000,
        }
        coupon = _ok(await client.post("/api/coupons", json=body, headers=admin), 201)
        coupons.append(coupon["id"])
        # More asks than coupons: some are SOLD_OUT, and issued must still stay <= total.
        for shopper in rng.sample(people, min(len(people), total + 4)):
            issued = await client.post(
                f"/api/coupons/{coupon['id']}/issue",
                params={"wait": "true"},
                json={"user_id": shopper.id},
                headers=shopper.headers,
            )
            if issued.status_code == 201:
                shopper.coupons.append(issued.json()["id"])
            elif issued.status_code != 409:
                raise Refused(f"issue: {issued.status_code} {issued.text[:300]}")
    drop_id = None
    if drop:
        # Fewer than the shoppers, so the load's issue requests also meet SOLD_OUT.
        body = {
            "name": "Chaos drop",
            "discount_type": "FIXED",
            "discount_value": 2_000,
            "total_quantity": drop,
            "min_order_amount": 10_000,
        }
        drop_id = _ok(await client.post("/api/coupons", json=body, headers=admin), 201)["id"]
    probe = await _shopper(client, admin, 1_000_000)
    charged[probe.id] = 1_000_000
    probe_product = min(products, key=products.__getitem__)
    placed = _ok(
        await client.post(
            "/api/orders",
            params={"wait": "true"},
            json={"user_id": probe.id, "items": [{"product_id": probe_product, "quantity": 1}]},
            headers=probe.headers,
        ),
        200,
        202,
    )
    return Setup(
        admin=admin,
        products=products,
        start_stock=start_stock,
        shoppers=people,
        charged=charged,
        coupons=coupons,
        probe=probe,
        probe_order=placed["id"],
        probe_product=probe_product,
        drop=drop_id,
    )
