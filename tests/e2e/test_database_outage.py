"""Each service while its database is away (refusing connections, every open one terminated):
through the gateway its routes answer 503 SERVICE_UNAVAILABLE with Retry-After, never a 500,
and its /ready is false; both come back by themselves once the database is back."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import httpx
import pytest

from shopdev.testing import database_refusing, poll

from .conftest import Stack, User, log_tail, problem_code


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, object] | None = None


def calls_of(service: str, stack: Stack, shopper: User) -> list[Call]:
    """A read and, where a shopper or the shop makes one, a write that needs the database."""
    me = f"/api/users/{shopper.id}"
    return {
        "wallet": [
            Call("GET", f"{me}/balance", shopper.headers),
            Call("POST", f"{me}/balance/charge", shopper.headers, {"amount": 1_000}),
        ],
        "catalog": [
            Call("GET", "/api/products?sort=name", {}),
            Call("POST", f"/api/products/{uuid.uuid4()}/restock", stack.admin, {"quantity": 1}),
        ],
        "order": [Call("GET", f"{me}/orders", shopper.headers)],
        "coupon": [Call("GET", f"{me}/coupons", shopper.headers)],
        "payment-mock": [Call("GET", f"/api/payments?order_id={uuid.uuid4()}", stack.merchant)],
        "analytics": [Call("GET", "/api/products/popular?days=3", {})],
    }[service]


async def answer(client: httpx.AsyncClient, call: Call) -> httpx.Response:
    return await client.request(call.method, call.path, headers=call.headers, json=call.body)


async def ready(stack: Stack, service: str) -> int:
    async with httpx.AsyncClient(base_url=stack.process(service).url, timeout=10) as client:
        return (await client.get("/ready")).status_code


SERVICES = ["wallet", "catalog", "order", "coupon", "payment-mock", "analytics"]


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_without_its_database_answers_503_and_recovers(
    stack: Stack, service: str
) -> None:
    shopper = await stack.new_user(balance=5_000)
    calls = calls_of(service, stack, shopper)
    before = {c.path: (await answer(stack.client, c)).status_code for c in calls}
    assert all(status < 500 for status in before.values()), before

    async with database_refusing(stack.infra.pg_admin_url, stack.db_url(service)):
        for call in calls:
            away = await answer(stack.client, call)
            assert away.status_code == 503, f"{call}: {away.status_code} {away.text}\n" + (
                log_tail(stack, service)
            )
            assert problem_code(away) == "SERVICE_UNAVAILABLE", away.text
            assert int(away.headers["Retry-After"]) >= 1
        await poll(lambda: ready(stack, service), until=_is(503), timeout=10)

    # Back by itself: no restart, the pools drop the connections the server closed.
    for call in calls:
        back = await poll(partial(answer, stack.client, call), until=_ok, timeout=20)
        assert back.status_code == before[call.path], back.text
    await poll(lambda: ready(stack, service), until=_is(200), timeout=20)


def _is(status: int) -> Callable[[int], bool]:
    return lambda got: got == status


def _ok(response: httpx.Response) -> bool:
    return response.status_code < 500
