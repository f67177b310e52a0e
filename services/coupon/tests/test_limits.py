"""The coupon service's limits: issue requests per user, the waiter cap, and waking by NOTIFY."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from contracts.coupon import IssueCouponRequested
from coupon import issuing, service
from coupon.issue_queue import IssueQueue
from coupon.main import build_app
from coupon.settings import Settings
from coupon.waiting import SETTLED_CHANNEL, Settlements
from shopdev.testing import (
    Infra,
    create_database,
    new_namespace,
    poll,
    serve,
    session_keys,
    unique_name,
)
from shopkit import notifications
from shopkit.db import Database
from shopkit.limits import Rule

from .conftest import SERVICE_DIR, NewCoupon, Query


def headers(settings: Settings, user_id: str, role: str = "user") -> dict[str, str]:
    return session_keys().headers(user_id, role)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def limited(infra: Infra, settings: Settings) -> Settings:
    """An app of its own (database, namespace) with limits on and no `?wait=true` room."""
    return settings.model_copy(
        update={
            "database_url": await create_database(infra, SERVICE_DIR, unique_name("coupon")),
            "kafka_namespace": await new_namespace(infra, "cl"),
            "rate_limits": True,
            "limit_issues_per_user": Rule(2, 60),
            "max_waiters": 0,
        }
    )


@pytest.fixture(scope="module")
async def client(limited: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(limited)) as client:
        yield client


async def new_coupons(client: httpx.AsyncClient, limited: Settings, count: int) -> list[str]:
    admin = headers(limited, "admin-" + uuid.uuid4().hex[:6], "admin")
    ids = []
    for _ in range(count):
        body = {"name": "Lim", "discount_type": "FIXED", "discount_value": 500, "total_quantity": 5}
        created = await client.post("/api/coupons", json=body, headers=admin)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    return ids


async def test_issue_requests_past_the_users_limit_are_refused_for_users_and_admins(
    client: httpx.AsyncClient, limited: Settings
) -> None:
    coupons = await new_coupons(client, limited, 4)
    me, other = str(uuid.uuid4()), str(uuid.uuid4())
    mine = headers(limited, me)
    answers = [
        await client.post(f"/api/coupons/{c}/issue", json={"user_id": me}, headers=mine)
        for c in coupons[:3]
    ]
    # An admin acting for the user counts against the user too.
    admin = headers(limited, "admin-" + uuid.uuid4().hex[:6], "admin")
    by_admin = await client.post(
        f"/api/coupons/{coupons[3]}/issue", json={"user_id": me}, headers=admin
    )
    theirs = await client.post(
        f"/api/coupons/{coupons[3]}/issue", json={"user_id": other}, headers=headers(limited, other)
    )

    assert [a.status_code for a in answers] == [202, 202, 429]
    for refused in (answers[2], by_admin):
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "RATE_LIMITED"
        assert int(refused.headers["Retry-After"]) == 30
    assert theirs.status_code == 202
    for coupon_id in coupons[2:]:
        mine_now = await client.get(f"/api/users/{me}/coupons", headers=mine)
        assert coupon_id not in {c["coupon_id"] for c in mine_now.json()["items"]}


async def test_a_full_waiter_cap_answers_202_and_the_place_still_settles(
    client: httpx.AsyncClient, limited: Settings
) -> None:
    [coupon_id] = await new_coupons(client, limited, 1)
    me = str(uuid.uuid4())
    began = time.monotonic()
    answer = await client.post(
        f"/api/coupons/{coupon_id}/issue",
        json={"user_id": me},
        params={"wait": "true"},
        headers=headers(limited, me),
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "PENDING"
    assert time.monotonic() - began < 1.0

    async def status() -> str:
        read = await client.get(
            f"/api/user-coupons/{answer.json()['id']}", headers=headers(limited, me)
        )
        return str(read.json()["status"])

    await poll(status, until=lambda s: s == "ISSUED")


async def test_a_waiter_is_woken_by_the_settling_transactions_notify(
    coupons: httpx.AsyncClient, new_coupon: NewCoupon, coupon_db: str, sql: Query
) -> None:
    coupon = await new_coupon(total_quantity=3)
    db = Database(coupon_db)
    settlements = Settlements(10)
    connected = asyncio.Event()
    listening = asyncio.create_task(
        notifications.listen(
            coupon_db, {SETTLED_CHANNEL: settlements.settled}, on_connect=connected.set
        )
    )
    try:
        # A place in line whose request message was never sent: nothing settles it but us.
        place, me = str(uuid.uuid4()), str(uuid.uuid4())
        requested = datetime.now(UTC)
        await sql(
            "INSERT INTO user_coupons (id, coupon_id, user_id, status, position, requested_at)"
            " VALUES ($1, $2, $3, 'PENDING', 1, $4)",
            place,
            coupon["id"],
            me,
            requested,
        )
        queue = IssueQueue(db)
        held = await service.get_user_coupon(db, queue=queue, user_coupon_id=place)
        await asyncio.wait_for(connected.wait(), timeout=10)
        waiting = asyncio.create_task(settlements.wait(queue, held, timeout=10))
        # It has read PENDING and sleeps until woken (or 2 s).
        await poll(lambda: asyncio.sleep(0, settlements.waiting), until=lambda n: n == 1)
        assert not waiting.done()

        async with db.transaction() as session:
            request = IssueCouponRequested(
                coupon_id=coupon["id"], user_coupon_id=place, user_id=me, requested_at=requested
            )
            await issuing.settle(session, request=request, now=datetime.now(UTC))
        settled_at = time.monotonic()
        woken = await waiting
        assert woken.row.status == "ISSUED"
        assert time.monotonic() - settled_at < 1.0  # the notification, not the 2 s re-read
    finally:
        listening.cancel()
        await db.dispose()
