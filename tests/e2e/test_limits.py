"""The gateway's abuse limits per client address: a gateway of its own, rendered with limits on,
in front of the stack's services (the session's gateway runs with SHOP_RATE_LIMITS=off)."""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from .conftest import Stack, _gateway, free_port, problem_code


@pytest.fixture(scope="module")
async def limited(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    env = {
        "SHOP_RATE_LIMITS": "on",
        "SHOP_LOCAL_DIR": str(tmp_path_factory.mktemp("limited-gateway")),
        "SHOP_GATEWAY_PORT": str(port),
        **{
            f"SHOP_{name.split('-')[0].upper()}_PORT": str(process.port)
            for name, process in stack.processes.items()
        },
    }
    _gateway("start", env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        _gateway("stop", env)


def login_body(email: str, password: str) -> dict[str, str]:
    return {"email": email, "password": password}


async def test_a_login_burst_gets_429_with_retry_after_and_the_right_password_works_after(
    stack: Stack, limited: httpx.AsyncClient
) -> None:
    user = await stack.new_user()
    answers = [
        await limited.post("/api/auth/login", json=login_body(user.email, "wrong-password"))
        for _ in range(60)
    ]

    counts = Counter(a.status_code for a in answers)
    # A burst of 10 passes at once, then one every 2 s (30/min): a slow run lets a few more by.
    assert set(counts) == {401, 429} and counts[401] < 30, counts
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert problem_code(refused) == "RATE_LIMITED"
    retry_after = int(refused.headers["Retry-After"])
    assert retry_after >= 1

    await asyncio.sleep(retry_after)
    again = await limited.post("/api/auth/login", json=login_body(user.email, "e2e-password"))
    assert again.status_code == 200, again.text


async def test_registrations_per_address_are_limited_and_the_refused_are_not_created(
    stack: Stack, limited: httpx.AsyncClient
) -> None:
    emails = [f"burst-{uuid.uuid4().hex[:10]}@example.com" for _ in range(15)]
    answers = [
        await limited.post(
            "/api/users", json={"name": "Burst", "email": email, "password": "e2e-password"}
        )
        for email in emails
    ]

    codes = [a.status_code for a in answers]
    # A burst of 5 passes at once, then one every 6 s (10/min).
    assert codes[:5] == [201] * 5 and codes.count(429) >= 5, codes
    refused = [e for e, a in zip(emails, answers, strict=True) if a.status_code == 429]
    for email in refused[:3]:
        login = await stack.client.post("/api/auth/login", json=login_body(email, "e2e-password"))
        assert problem_code(login) == "INVALID_CREDENTIALS"


async def test_with_limits_off_a_login_burst_is_never_rate_limited(stack: Stack) -> None:
    user = await stack.new_user()
    answers = [
        await stack.client.post("/api/auth/login", json=login_body(user.email, "wrong-password"))
        for _ in range(60)
    ]
    assert {a.status_code for a in answers} == {401}
    again = await stack.client.post("/api/auth/login", json=login_body(user.email, "e2e-password"))
    assert again.status_code == 200
