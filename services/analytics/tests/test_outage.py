"""While the analytics database refuses connections, every route answers 503 with Retry-After
(never 500) and /ready is false; within seconds of it coming back, 2xx again."""

import asyncio

import httpx

from analytics.settings import Settings
from shopdev.testing import Infra, database_refusing, poll

PATHS = ("/api/products/popular", "/api/stats/sales", "/ready")


async def statuses(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    return {path: await client.get(path) for path in PATHS}


async def test_routes_answer_503_while_the_database_is_away_and_2xx_after(
    analytics: httpx.AsyncClient, settings: Settings, infra: Infra
) -> None:
    assert {p: r.status_code for p, r in (await statuses(analytics)).items()} == dict.fromkeys(
        PATHS, 200
    )
    async with database_refusing(infra.pg_admin_url, settings.database_url):
        for _ in range(3):
            for path, response in (await statuses(analytics)).items():
                assert response.status_code == 503, (path, response.text)
                assert response.headers["retry-after"]
                assert response.headers["content-type"] == "application/problem+json"
            await asyncio.sleep(0.3)

    async def all_ok() -> set[int]:
        return {r.status_code for r in (await statuses(analytics)).values()}

    await poll(all_ok, until=lambda found: found == {200}, timeout=5, message="2xx again")
