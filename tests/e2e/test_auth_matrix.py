"""Every route of every service's OpenAPI against every kind of credential, generated.

Routes, who may call them (their OpenAPI `security`) and request bodies come from each
service's own OpenAPI document, so a new route is checked the day it appears. Requests go to each
service process of the end-to-end stack; the provider is also tried through the gateway.
"""

import asyncio
import base64
import hashlib
import hmac
import importlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
    load_pem_private_key,
)
from fastapi import FastAPI

from shopdev.stack import SERVICES, ServiceSpec
from shopdev.testing import session_keys
from shopkit.keys import key_id, load_private_key

from .conftest import Stack, User
from .published import repository_secrets

PrivateKey = RSAPrivateKey | Ed25519PrivateKey

pytestmark = pytest.mark.e2e

# The contract's public routes (API.md, Identity): everything else under /api needs a credential.
PUBLIC = {
    ("POST", "/api/users"),
    ("POST", "/api/auth/login"),
    ("GET", "/api/categories"),
    ("GET", "/api/products"),
    ("GET", "/api/products/{product_id}"),
    ("GET", "/api/products/popular"),
    ("GET", "/api/stats/sales"),
}
# Admin-only in the contract; the code may add more, never fewer.
ADMIN = {
    ("POST", "/api/products"),
    ("POST", "/api/products/{product_id}/restock"),
    ("POST", "/api/coupons"),
    ("POST", "/api/user-coupons/{user_coupon_id}/revoke"),
    ("PUT", "/api/payments/behavior"),
    ("GET", "/api/payments/behavior"),
}
MERCHANT = {
    ("POST", "/api/payments"),
    ("POST", "/api/payments/{payment_id}/cancel"),
    ("GET", "/api/payments/{payment_id}"),
    ("GET", "/api/payments"),
}
OWNED = {"user_id", "order_id", "user_coupon_id", "payment_id"}  # path params naming A's things


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str
    guard: str  # public | user | admin | merchant | merchant_or_admin
    params: tuple[str, ...]
    body: dict[str, Any] | None  # the request body's JSON schema
    document: dict[str, Any]  # the service's OpenAPI document, for the schema's references


def build(spec: ServiceSpec) -> FastAPI:
    module, factory = spec.factory.split(":")
    app: FastAPI = getattr(importlib.import_module(module), factory)()
    return app


# Who may call an operation, from its OpenAPI `security` (alternatives; the bearer scheme
# lists the role `admin` where only an admin may call, see shopkit.openapi).
GUARDS = {
    frozenset(): "public",
    frozenset({"bearer"}): "user",
    frozenset({"bearer:admin"}): "admin",
    frozenset({"merchantKey"}): "merchant",
    frozenset({"merchantKey", "bearer:admin"}): "merchant_or_admin",
}


def guard_of(operation: dict[str, Any]) -> str:
    return GUARDS[
        frozenset(
            ":".join([name, *roles])
            for need in operation.get("security", [])
            for name, roles in need.items()
        )
    ]


def example(schema: dict[str, Any], spec: dict[str, Any], name: str, values: dict[str, Any]) -> Any:
    """A small valid-looking value for `schema`: required fields only, known names from `values`."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if name in values:
        return values[name]
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return example(option, spec, name, values)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example(props[k], spec, k, values) for k in schema.get("required", [])}
    if kind == "array":
        return [example(schema.get("items", {}), spec, name, values)]
    minimum = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
    return {"integer": max(1, int(minimum)), "number": 0, "boolean": False}.get(
        str(kind), "x" * max(1, schema.get("minLength", 1))
    )


def routes() -> list[Route]:
    found = []
    for spec in SERVICES:
        document = build(spec).openapi()
        for path, operations in document["paths"].items():
            if not path.startswith("/api"):
                continue
            for method, operation in operations.items():
                content = operation.get("requestBody", {}).get("content", {})
                schema = content.get("application/json", {}).get("schema")
                params = tuple(
                    p["name"] for p in operation.get("parameters", []) if p["in"] == "path"
                )
                guard = guard_of(operation)
                found.append(
                    Route(spec.name, method.upper(), path, guard, params, schema, document)
                )
    return found


ROUTES = routes()


def test_the_routes_guard_what_the_contract_says() -> None:
    by_key = {(r.method, r.path): r.guard for r in ROUTES}
    assert {k for k, guard in by_key.items() if guard == "public"} == PUBLIC
    assert all(by_key[k] == "admin" for k in ADMIN), {k: by_key.get(k) for k in ADMIN}
    assert {k for k, g in by_key.items() if g.startswith("merchant")} == MERCHANT
    assert {by_key[k] for k in MERCHANT} == {"merchant", "merchant_or_admin"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(sub: str, role: str = "admin", **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": sub,
        "role": role,
        "iss": "shop",
        "aud": "shop-api",
        "iat": now,
        "exp": now + 600,
    }
    return base | changes


def hs256(payload: dict[str, Any], secret: bytes, kid: str) -> str:
    """Made by hand: PyJWT refuses some of these secrets (PEM) as HMAC keys, an attacker won't."""
    head = b64(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}))
    body = b64(orjson.dumps(payload))
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def private_keys_in(texts: tuple[str, ...]) -> list[tuple[str, PrivateKey]]:
    """Every repository string that can be read as a private key, with the algorithm it signs
    with: PEM and base64url DER blocks, and any 43-character string (32 bytes are an Ed25519 key)."""
    found: list[tuple[str, PrivateKey]] = []
    for text in texts:
        try:
            if text.startswith("-----BEGIN"):
                key = load_pem_private_key(text.encode(), password=None)
            elif len(text) == 43:
                key = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(text + "="))
            else:
                key = load_der_private_key(
                    base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), None
                )
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        if isinstance(key, RSAPrivateKey):
            found.append(("RS256", key))
        elif isinstance(key, Ed25519PrivateKey):
            found.append(("EdDSA", key))
    return found


def forged_tokens(a: User) -> dict[str, str]:
    """Tokens no service may accept, by what is wrong with them. Admin claims where possible."""
    keys = session_keys()
    real = load_private_key(keys.private_key, variable="test")
    kid = key_id(real.public_key())
    public_der = real.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    user_token = keys.headers(a.id)["Authorization"].split(" ", 1)[1]
    head, payload, signature = user_token.split(".")
    as_admin = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    as_admin["role"] = "admin"
    admin_token = keys.headers(a.id, "admin")["Authorization"].split(" ", 1)[1]
    other = generate_private_key(public_exponent=65537, key_size=2048)
    tokens = {
        "alg none": f"{b64(orjson.dumps({'alg': 'none', 'typ': 'JWT', 'kid': kid}))}"
        f".{b64(orjson.dumps(claims(a.id)))}.",
        "HS256 keyed with the public key": hs256(claims(a.id), public_der, kid),
        "HS256 keyed with the public key (base64url)": hs256(
            claims(a.id), keys.public_key.encode(), kid
        ),
        "the real key, PS256": jwt.encode(claims(a.id), real, "PS256", {"kid": kid}),
        "another key, the real kid": jwt.encode(claims(a.id), other, "RS256", {"kid": kid}),
        "another key, its own kid": jwt.encode(
            claims(a.id), other, "RS256", {"kid": key_id(other.public_key())}
        ),
        "expired": jwt.encode(claims(a.id, exp=int(time.time()) - 5), real, "RS256", {"kid": kid}),
        "wrong audience": jwt.encode(claims(a.id, aud="x"), real, "RS256", {"kid": kid}),
        "wrong issuer": jwt.encode(claims(a.id, iss="x"), real, "RS256", {"kid": kid}),
        "no kid": jwt.encode(claims(a.id), real, "RS256"),
        "role altered to admin": f"{head}.{b64(orjson.dumps(as_admin))}.{signature}",
        "signature altered": admin_token[:-4] + ("AAAA" if admin_token[-4:] != "AAAA" else "BBBB"),
        "the merchant key as a token": keys.merchant_key,
        "garbage": "garbage",
    }
    for i, (alg, key) in enumerate(private_keys_in(repository_secrets())):
        own = key_id(key.public_key()) if isinstance(key, RSAPrivateKey) else "own"
        for label, header_kid in (("real kid", kid), ("own kid", own)):
            tokens[f"repository {alg} key {i}, {label}"] = jwt.encode(
                claims(a.id), key, alg, {"kid": header_kid}
            )
    return tokens


@dataclass
class World:
    """Shopper A's things (B must not touch them), and who asks."""

    a: User
    b: User
    values: dict[str, Any]  # path parameters naming A's things, and body fields

    def target(self, route: Route) -> tuple[str, dict[str, Any] | None]:
        path = route.path
        for name in route.params:
            path = path.replace("{" + name + "}", str(self.values.get(name, uuid.uuid4())))
        # A body names A's user, but never A's order: a charge for it would be a real payment.
        fields = {k: v for k, v in self.values.items() if k != "order_id"}
        body = None if route.body is None else example(route.body, route.document, "", fields)
        return path, body


@pytest.fixture(scope="module")
async def world(stack: Stack) -> World:
    a, b = await stack.new_user(balance=100_000, name="OwnerA"), await stack.new_user(name="OtherB")
    product = await stack.new_product(price=1_000, stock=100)
    placed = await stack.client.post(
        "/api/orders",
        params={"wait": "true"},
        json={"user_id": a.id, "items": [{"product_id": product, "quantity": 1}]},
        headers=a.headers,
    )
    assert placed.status_code == 200 and placed.json()["status"] == "PAID", placed.text
    order_id = placed.json()["id"]
    coupon = await stack.client.post(
        "/api/coupons",
        json={"name": "matrix", "discount_type": "FIXED", "discount_value": 1, "total_quantity": 9},
        headers=stack.admin,
    )
    assert coupon.status_code == 201, coupon.text
    issued = await stack.client.post(
        f"/api/coupons/{coupon.json()['id']}/issue",
        params={"wait": "true"},
        json={"user_id": a.id},
        headers=a.headers,
    )
    assert issued.status_code == 201, issued.text
    paid = await stack.client.get(
        "/api/payments", params={"order_id": order_id}, headers=stack.merchant
    )
    assert paid.status_code == 200 and len(paid.json()["items"]) == 1, paid.text
    values = {
        "user_id": a.id,
        "order_id": order_id,
        "user_coupon_id": issued.json()["id"],
        "payment_id": paid.json()["items"][0]["payment_id"],
        "product_id": product,
        "coupon_id": coupon.json()["id"],
        "items": [{"product_id": product, "quantity": 1}],
        "amount": 1_000,
        "quantity": 1,
    }
    return World(a, b, values)


async def ask(
    stack: Stack, world: World, route: Route, headers: dict[str, str], *, gateway: bool = False
) -> httpx.Response:
    path, body = world.target(route)
    url = path if gateway else stack.process(route.service).url + path
    headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    return await stack.client.request(route.method, url, json=body, headers=headers)


async def statuses(
    stack: Stack, world: World, cases: list[tuple[Route, dict[str, str], str]], **kw: Any
) -> list[tuple[str, int, str]]:
    """(route and case, status, body) for every case, a few at a time."""
    found: list[tuple[str, int, str]] = []
    for start in range(0, len(cases), 16):
        chunk = cases[start : start + 16]
        answers = await asyncio.gather(*(ask(stack, world, r, h, **kw) for r, h, _ in chunk))
        found.extend(
            (f"{r.method} {r.path} [{label}]", a.status_code, a.text[:200])
            for (r, _, label), a in zip(chunk, answers, strict=True)
        )
    return found


def guarded() -> list[Route]:
    return [r for r in ROUTES if r.guard != "public"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wrong(
    found: list[tuple[str, int, str]], ok: Callable[[int], bool]
) -> list[tuple[str, int, str]]:
    return [f for f in found if not ok(f[1])]


async def test_no_or_forged_credentials_get_401_everywhere(stack: Stack, world: World) -> None:
    cases: list[tuple[Route, dict[str, str], str]] = [(r, {}, "no credential") for r in guarded()]
    for label, token in forged_tokens(world.a).items():
        cases += [(r, bearer(token), label) for r in guarded()]
    found = await statuses(stack, world, cases)
    assert not wrong(found, lambda s: s == 401), wrong(found, lambda s: s == 401)


async def test_tokens_signed_with_repository_strings_get_401(stack: Stack, world: World) -> None:
    """Every string of the repository as an HS256 key, on one guarded route per service."""
    kid = key_id(load_private_key(session_keys().private_key, variable="t").public_key())
    one_each = {r.service: r for r in reversed(guarded()) if r.guard in ("user", "admin")}
    cases = [
        (route, bearer(hs256(claims(world.a.id), text.encode(), kid)), f"HS256 {text[:20]}")
        for text in repository_secrets()
        for route in one_each.values()
    ]
    found = await statuses(stack, world, cases)
    assert len(one_each) >= 5 and not wrong(found, lambda s: s == 401), wrong(
        found, lambda s: s == 401
    )


async def test_another_shopper_cannot_touch_what_is_not_theirs(stack: Stack, world: World) -> None:
    cases = [(r, world.b.headers, "shopper B") for r in guarded()]
    found = {label: (status, text) for label, status, text in await statuses(stack, world, cases)}
    for route in guarded():
        status, text = found[f"{route.method} {route.path} [shopper B]"]
        _, body = world.target(route)
        owned = bool(set(route.params) & OWNED) or (isinstance(body, dict) and "user_id" in body)
        if route.guard != "user":  # admin, merchant: never a shopper
            assert status == 403, (route, status, text)
        elif owned:
            assert status in (403, 404), (route, status, text)
        else:
            assert status not in (401, 403), (route, status, text)
    # Nothing of A's moved.
    order = await stack.client.get(
        f"/api/orders/{world.values['order_id']}", headers=world.a.headers
    )
    assert order.json()["status"] == "PAID"
    assert await stack.balance(world.a) == 99_000
    payment = await stack.client.get(
        f"/api/payments/{world.values['payment_id']}", headers=stack.merchant
    )
    assert payment.json()["status"] == "APPROVED"


async def test_a_shopper_never_reaches_the_provider_through_the_gateway(
    stack: Stack, world: World
) -> None:
    provider = [r for r in ROUTES if r.service == "payment-mock"]
    for who, headers in (("A", world.a.headers), ("B", world.b.headers), ("nobody", {})):
        found = await statuses(stack, world, [(r, headers, who) for r in provider], gateway=True)
        assert not wrong(found, lambda s: s in (401, 403)), wrong(found, lambda s: s in (401, 403))


async def test_admin_and_merchant_work_where_the_contract_says(stack: Stack, world: World) -> None:
    allowed = lambda s: s not in (401, 403)  # noqa: E731 - the answer itself is the route's
    admin_cases = [(r, stack.admin, "admin") for r in guarded() if r.guard != "merchant"]
    found = await statuses(stack, world, admin_cases)
    assert not wrong(found, allowed), wrong(found, allowed)
    # The admin may look payments up but never charge or cancel: that is the merchant's.
    found = await statuses(
        stack, world, [(r, stack.admin, "admin") for r in ROUTES if r.guard == "merchant"]
    )
    assert not wrong(found, lambda s: s == 403), wrong(found, lambda s: s == 403)
    merchant_cases = [
        (r, stack.merchant, "merchant") for r in ROUTES if r.guard.startswith("merchant")
    ]
    # The charge here is for no order of the shop: declined, so no live payment is left behind.
    await stack.set_payment_behavior(decline_rate=1)
    try:
        found = await statuses(stack, world, merchant_cases)
    finally:
        await stack.set_payment_behavior()
    assert not wrong(found, allowed), wrong(found, allowed)
    # The merchant key is no shop credential: the shop's own routes refuse it.
    found = await statuses(
        stack, world, [(r, stack.merchant, "merchant") for r in guarded() if r.guard == "user"]
    )
    assert not wrong(found, lambda s: s == 401), wrong(found, lambda s: s == 401)
