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
