"""The order service's limits: orders per user, and a cap on `?wait=true` waiters."""

import asyncio
import time
import uuid

import asyncpg

from order.main import build_app
from order.settings import Settings
from order.waiting import Waiters
from shopdev.testing import Infra, new_namespace, poll, serve
from shopkit.db import Database, asyncpg_dsn
from shopkit.limits import Rule

from .conftest import headers_for
from .test_apply_events import placed


async def orders_of(db: Database, user_id: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(db.url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", user_id))
    finally:
        await conn.close()


async def limited(infra: Infra, settings: Settings, db: Database, **changes: object) -> Settings:
    """Settings of an app of its own: its own database and namespace, limits on."""
    return settings.model_copy(
        update={
            "database_url": db.url,
            "kafka_namespace": await new_namespace(infra, "ol"),
            "rate_limits": True,
            **changes,
        }
    )


def order_body(user_id: str) -> dict[str, object]:
    return {"user_id": user_id, "items": [{"product_id": "p1", "quantity": 1}]}


async def test_orders_past_the_users_limit_are_refused_and_not_placed(
    infra: Infra, settings: Settings, own_db: Database
) -> None:
    conf = await limited(infra, settings, own_db, limit_orders_per_user=Rule(2, 60))
    user, other = str(uuid.uuid4()), str(uuid.uuid4())
    async with serve(build_app(conf)) as client:
        answers = [
            await client.post("/api/orders", json=order_body(user), headers=headers_for(conf, user))
            for _ in range(4)
        ]
        theirs = await client.post(
            "/api/orders", json=order_body(other), headers=headers_for(conf, other)
        )
    assert [a.status_code for a in answers] == [202, 202, 429, 429]
    assert answers[2].json()["code"] == "RATE_LIMITED"
    assert int(answers[2].headers["Retry-After"]) == 30
    assert theirs.status_code == 202  # each user has a count of their own
    assert await orders_of(own_db, user) == 2


async def test_with_limits_off_orders_are_not_counted(
    infra: Infra, settings: Settings, own_db: Database
) -> None:
    conf = await limited(
        infra, settings, own_db, rate_limits=False, limit_orders_per_user=Rule(1, 60)
    )
    user = str(uuid.uuid4())
    async with serve(build_app(conf)) as client:
        answers = [
            await client.post("/api/orders", json=order_body(user), headers=headers_for(conf, user))
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [202] * 3


async def test_a_full_waiter_cap_answers_202_at_once(
    infra: Infra, settings: Settings, own_db: Database
) -> None:
    # Nothing answers the saga's commands here, so every order stays PENDING.
    conf = await limited(infra, settings, own_db, max_waiters=1, wait_seconds=4.0)
    user = str(uuid.uuid4())
    headers = headers_for(conf, user)
    app = build_app(conf)
    async with serve(app) as client:
        first = asyncio.create_task(
            client.post(
                "/api/orders", json=order_body(user), headers=headers, params={"wait": "true"}
            )
        )
        await poll(lambda: asyncio.sleep(0, app.state.waiters.waiting), until=lambda n: n == 1)
        began = time.monotonic()
        second = await client.post(
            "/api/orders", json=order_body(user), headers=headers, params={"wait": "true"}
        )
        took = time.monotonic() - began
        assert second.status_code == 202, second.text
        assert second.json()["status"] == "PENDING"
        assert took < 2.0, took
        assert (await first).status_code == 202  # it waited its 4 s out
    assert await orders_of(own_db, user) == 2


async def test_waiters_beyond_the_cap_read_once_and_return(
    own_db: Database, settings: Settings
) -> None:
    a, b = await placed(own_db, settings), await placed(own_db, settings)
    waiters = Waiters(1)

    def settled(seen: object) -> bool:
        return False

    waiting = asyncio.create_task(waiters.wait(own_db, a, until=settled, timeout=5))
    await poll(lambda: asyncio.sleep(0, waiters.waiting), until=lambda n: n == 1)
    began = time.monotonic()
    beyond = await waiters.wait(own_db, b, until=settled, timeout=5)
    assert time.monotonic() - began < 1.0
    assert not beyond.done and beyond.row is not None and beyond.row.id == b
    assert not waiting.done()
    waiting.cancel()
