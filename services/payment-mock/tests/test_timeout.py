"""Timeouts over a real socket: the in-process transport has no client timeouts to exceed."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import uvicorn

from payment_mock.main import build_app
from payment_mock.settings import Settings
from shopdev.testing import poll

Behave = Callable[..., Awaitable[None]]
HANG_SECONDS = 30.0


@pytest.fixture
async def replica(settings: Settings) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """A second replica on a real port, whose timeouts hang far longer than the test runs."""
    app = build_app(settings.model_copy(update={"timeout_hang_seconds": HANG_SECONDS}))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    await poll(lambda: _ready(server), timeout=10, message="uvicorn started")
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", server
    server.should_exit = True
    await task


async def _ready(server: uvicorn.Server) -> bool:
    return server.started


async def test_a_timeout_records_the_payment_but_does_not_answer_in_time(
    replica: tuple[str, uvicorn.Server],
    payments: httpx.AsyncClient,
    merchant: dict[str, str],
    behave: Behave,
) -> None:
    url, _ = replica
    # Set through the in-process app, obeyed by the replica: behavior lives in the database.
    await behave(timeout_rate=1)
    order_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=url, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                "/api/payments",
                json={"order_id": order_id, "amount": 5_000},
                headers={**merchant, "Idempotency-Key": str(uuid.uuid4())},
            )
        assert time.monotonic() - started < 2

        async def lookup() -> list[dict[str, object]]:
            found = await client.get(
                "/api/payments", params={"order_id": order_id}, headers=merchant
            )
            return found.json()["items"]

        found = await poll(lookup, until=lambda items: len(items) == 1, timeout=5)
        assert found[0]["status"] == "APPROVED"
        cancelled = await client.post(
            f"/api/payments/{found[0]['payment_id']}/cancel", headers=merchant
        )
        assert cancelled.json()["status"] == "CANCELLED"


async def test_a_hung_answer_ends_when_the_client_hangs_up(
    replica: tuple[str, uvicorn.Server], merchant: dict[str, str], behave: Behave
) -> None:
    url, server = replica
    await behave(timeout_rate=1)
    async with httpx.AsyncClient(base_url=url, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                "/api/payments",
                json={"order_id": str(uuid.uuid4()), "amount": 5_000},
                headers={**merchant, "Idempotency-Key": str(uuid.uuid4())},
            )

    async def running_requests() -> int:
        return len(server.server_state.tasks)

    # The handler gives up its 30 s hang once the connection is gone.
    await poll(running_requests, until=lambda n: n == 0, timeout=5)
