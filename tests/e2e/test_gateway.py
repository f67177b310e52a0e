"""The gateway routes the public API to the services, and the wallet works through it."""

import uuid

import pytest

from .conftest import Stack

pytestmark = pytest.mark.e2e


async def test_register_login_charge_and_read_through_the_gateway(stack: Stack) -> None:
    user = await stack.new_user(balance=12_000)

    charged = await stack.client.post(
        f"/api/users/{user.id}/balance/charge", json={"amount": 3_000}, headers=user.headers
    )

    assert charged.status_code == 200 and charged.json()["balance"] == 15_000
    assert await stack.balance(user) == 15_000


async def test_gateway_answers_unknown_paths_with_problem_json(stack: Stack) -> None:
    response = await stack.client.get(f"/nowhere/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "NOT_FOUND"


async def test_invalid_charge_through_the_gateway_is_a_clear_422(stack: Stack) -> None:
    user = await stack.new_user()
    response = await stack.client.post(
        f"/api/users/{user.id}/balance/charge", json={"amount": 0}, headers=user.headers
    )
    assert (response.status_code, response.json()["code"]) == (422, "INVALID_AMOUNT")
    assert await stack.balance(user) == 0


@pytest.mark.parametrize(
    "service", ["wallet", "catalog", "order", "coupon", "payment", "analytics"]
)
async def test_the_gateway_serves_each_services_dead_letters_to_admins_only(
    stack: Stack, service: str
) -> None:
    shopper = await stack.new_user()
    path = f"/api/ops/{service}/dead-letters"

    listed = await stack.client.get(path, headers=stack.admin)
    refused = await stack.client.get(path, headers=shopper.headers)
    anonymous = await stack.client.get(path)
    missing = await stack.client.get(f"{path}/{uuid.uuid4()}", headers=stack.admin)

    assert listed.status_code == 200 and set(listed.json()) == {"items", "next_cursor"}
    assert (refused.status_code, anonymous.status_code) == (403, 401)
    assert (missing.status_code, missing.json()["code"]) == (404, "DEAD_LETTER_NOT_FOUND")
