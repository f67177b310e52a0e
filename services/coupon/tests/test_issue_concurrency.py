"""First come, first served under bursts: never more than the total, one per user, no lost place.

Every request is a real HTTP request to the in-process app, on real PostgreSQL and Kafka; the
PENDING places settle through the coupon.issue-requests topic.
"""

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx

from shopdev.testing import KafkaProbe, poll


async def issue(
    client: httpx.AsyncClient, coupon_id: str, user_id: str, token_for
) -> httpx.Response:
    return await client.post(
        f"/api/coupons/{coupon_id}/issue", json={"user_id": user_id}, headers=token_for(user_id)
    )


def outcomes(responses: list[httpx.Response]) -> Counter[Any]:
    return Counter(r.json().get("code", r.json().get("status")) for r in responses)


async def settled(sql, coupon_id: str, count: int) -> list[Any]:
    """The coupon's ISSUED rows, once `count` of them exist and none is PENDING."""

    async def rows() -> list[Any]:
        return await sql(
            "SELECT user_id, status, position, issued_at FROM user_coupons WHERE coupon_id = $1",
            coupon_id,
        )

    found = await poll(
        rows,
        until=lambda rs: (
            sum(r["status"] == "ISSUED" for r in rs) >= count
            and all(r["status"] != "PENDING" for r in rs)
        ),
        timeout=20,
        message="every place settled",
    )
    return [r for r in found if r["status"] == "ISSUED"]


async def quantities(sql, coupon_id: str) -> tuple[int, int]:
    [row] = await sql(
        "SELECT c.issued_quantity, l.accepted FROM coupons c JOIN coupon_lines l"
        " ON l.coupon_id = c.id WHERE c.id = $1",
        coupon_id,
    )
    return row["issued_quantity"], row["accepted"]


async def test_1000_users_at_once_for_100_coupons(
    coupons: httpx.AsyncClient, new_coupon, token_for, sql, kafka: KafkaProbe
) -> None:
    coupon = await new_coupon(total_quantity=100)
    users = [str(uuid.uuid4()) for _ in range(1_000)]

    responses = await asyncio.gather(*[issue(coupons, coupon["id"], u, token_for) for u in users])

    assert outcomes(responses) == {"PENDING": 100, "SOLD_OUT": 900}
    accepted = {r.json()["user_id"] for r in responses if r.status_code == 202}
    issued = await settled(sql, coupon["id"], 100)
    assert len(issued) == 100 and {r["user_id"] for r in issued} == accepted
    assert sorted(r["position"] for r in issued) == list(range(1, 101))
    assert await quantities(sql, coupon["id"]) == (100, 100)
    # The line's partition carried the places in acceptance order, and issue followed it.
    requests = await kafka.wait_for(
        "coupon.issue-requests",
        lambda e: e["payload"]["coupon_id"] == coupon["id"],
        count=100,
    )
    position = {r["user_id"]: r["position"] for r in issued}
    assert [position[e["payload"]["user_id"]] for e in requests] == list(range(1, 101))


async def test_one_user_sending_50_requests_gets_one_coupon(
    coupons: httpx.AsyncClient, new_coupon, token_for, sql
) -> None:
    coupon, me = await new_coupon(total_quantity=100), str(uuid.uuid4())

    responses = await asyncio.gather(
        *[issue(coupons, coupon["id"], me, token_for) for _ in range(50)]
    )

    assert outcomes(responses) == {"PENDING": 1, "ALREADY_ISSUED": 49}
    [row] = await settled(sql, coupon["id"], 1)
    assert row["user_id"] == me
    assert await quantities(sql, coupon["id"]) == (1, 1)


async def test_200_users_sending_5_requests_each_for_100_coupons(
    coupons: httpx.AsyncClient, new_coupon, token_for, sql
) -> None:
    coupon = await new_coupon(total_quantity=100)
    users = [str(uuid.uuid4()) for _ in range(200)]

    responses = await asyncio.gather(
        *[issue(coupons, coupon["id"], u, token_for) for u in users for _ in range(5)]
    )

    counts = outcomes(responses)
    assert counts["PENDING"] == 100 and set(counts) <= {"PENDING", "SOLD_OUT", "ALREADY_ISSUED"}
    issued = await settled(sql, coupon["id"], 100)
    assert len({r["user_id"] for r in issued}) == 100
    assert await quantities(sql, coupon["id"]) == (100, 100)


async def test_several_single_coupons_contested_at_once_go_to_exactly_one_user_each(
    coupons: httpx.AsyncClient, new_coupon, token_for, sql
) -> None:
    singles = [await new_coupon(total_quantity=1) for _ in range(5)]
    users = [str(uuid.uuid4()) for _ in range(40)]

    responses = await asyncio.gather(
        *[issue(coupons, c["id"], u, token_for) for c in singles for u in users]
    )

    assert outcomes(responses) == {"PENDING": 5, "SOLD_OUT": 195}
    for coupon in singles:
        [winner] = await settled(sql, coupon["id"], 1)
        assert winner["position"] == 1
        assert await quantities(sql, coupon["id"]) == (1, 1)
