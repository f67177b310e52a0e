"""A dependency that is away answers 503 with Retry-After; a bug stays a 500; never the reverse."""

import asyncpg
import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI

from shopkit.errors import Problem, install_error_handlers

RAISED: dict[str, Exception] = {
    "refused": ConnectionRefusedError(111, "Connect call failed"),
    "timeout": TimeoutError(),
    "shutdown": asyncpg.exceptions.AdminShutdownError("terminating connection"),
    "closed": asyncpg.InterfaceError("connection is closed"),
    "lost": asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    ),
    "deadlock": asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    "broker": KafkaConnectionError(),
    "bug": ValueError("a bug"),
    "duplicate": asyncpg.exceptions.UniqueViolationError("dup"),
    "bad argument": asyncpg.exceptions.DataError("invalid input for query argument $1"),
    "nul": asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"),
    "problem": Problem(503, "PROVIDER_DOWN"),
}


@pytest.fixture(scope="module")
def client() -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{name}")
    async def fail(name: str) -> None:
        raise RAISED[name]

    # A bug must still answer 500 to the client; the server re-raises it to its own log.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.parametrize(
    "name", ["refused", "timeout", "shutdown", "closed", "lost", "deadlock", "broker"]
)
async def test_a_dependency_away_or_busy_is_503_with_retry_after(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.get(f"/raise/{name}")
    assert response.status_code == 503
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0


@pytest.mark.parametrize("name", ["bug", "duplicate", "bad argument"])
async def test_a_bug_is_still_a_500(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/raise/{name}")
    assert (response.status_code, response.json()["code"]) == (500, "INTERNAL_ERROR")
    assert "retry-after" not in response.headers


async def test_text_the_database_cannot_store_is_the_clients(client: httpx.AsyncClient) -> None:
    response = await client.get("/raise/nul")
    assert (response.status_code, response.json()["code"]) == (422, "INVALID_CHARACTER")


async def test_every_503_problem_says_when_to_retry(client: httpx.AsyncClient) -> None:
    response = await client.get("/raise/problem")
    assert (response.status_code, response.json()["code"]) == (503, "PROVIDER_DOWN")
    assert response.headers["retry-after"]
