"""The order saga's coupon commands over real Kafka: reserve, release, replays and voids."""

import asyncio
import uuid
from typing import Any

import httpx

from contracts.coupon import ReleaseCoupon, RepriceCoupon, ReserveCoupon
from shopdev.testing import KafkaProbe
from shopkit.clock import FrozenClock


async def issued_coupon(
    coupons: httpx.AsyncClient, new_coupon, token_for, **terms: Any
) -> tuple[str, str]:
    """A new user and the id of an ISSUED user coupon they hold."""
    coupon, user_id = await new_coupon(**terms), str(uuid.uuid4())
    response = await coupons.post(
        f"/api/coupons/{coupon['id']}/issue",
        json={"user_id": user_id},
        params={"wait": "true"},
        headers=token_for(user_id),
    )
    assert response.status_code == 201, response.text
    return user_id, response.json()["id"]


async def reply_to(kafka: KafkaProbe, operation_id: str) -> dict[str, Any]:
    [envelope] = await kafka.wait_for(
        "coupon.replies", lambda e: e["payload"]["operation_id"] == operation_id
    )
    return {"type": envelope["type"], **envelope["payload"]}


async def reserve(
    kafka: KafkaProbe, user_id: str, user_coupon_id: str, subtotal: int, order_id: str = ""
) -> dict[str, Any]:
    operation_id = str(uuid.uuid4())
    await kafka.publish(
        ReserveCoupon(
            order_id=order_id or str(uuid.uuid4()),
            operation_id=operation_id,
            user_id=user_id,
            user_coupon_id=user_coupon_id,
            subtotal=subtotal,
        )
    )
    return await reply_to(kafka, operation_id)


async def release(kafka: KafkaProbe, order_id: str, user_coupon_id: str) -> dict[str, Any]:
    operation_id = str(uuid.uuid4())
    await kafka.publish(
        ReleaseCoupon(order_id=order_id, operation_id=operation_id, user_coupon_id=user_coupon_id)
    )
    return await reply_to(kafka, operation_id)


async def reprice(
    kafka: KafkaProbe, order_id: str, user_coupon_id: str, subtotal: int
) -> dict[str, Any]:
    operation_id = str(uuid.uuid4())
    await kafka.publish(
        RepriceCoupon(
            order_id=order_id,
            operation_id=operation_id,
            user_coupon_id=user_coupon_id,
            subtotal=subtotal,
        )
    )
    return await reply_to(kafka, operation_id)


async def state_of(sql, user_coupon_id: str) -> tuple[str, str | None]:
    [row] = await sql("SELECT status, order_id FROM user_coupons WHERE id = $1", user_coupon_id)
    return row["status"], row["order_id"]


async def test_fixed_3000_on_20000_takes_3000_and_marks_the_coupon_used(
    coupons, new_coupon, token_for, kafka: KafkaProbe, sql
) -> None:
    user_id, uc = await issued_coupon(
        coupons, new_coupon, token_for, discount_type="FIXED", discount_value=3_000
    )
    order_id = str(uuid.uuid4())

    reply = await reserve(kafka, user_id, uc, 20_000, order_id)

    assert reply["type"] == "CouponReserved" and reply["discount"] == 3_000
    assert await state_of(sql, uc) == ("USED", order_id)
    listed = await coupons.get(
        f"/api/users/{user_id}/coupons", params={"status": "USED"}, headers=token_for(user_id)
    )
    [used] = listed.json()["items"]
    assert used["order_id"] == order_id and used["used_at"] is not None


async def test_percent_10_on_110000_takes_11000(
    coupons, new_coupon, token_for, kafka: KafkaProbe
) -> None:
    user_id, uc = await issued_coupon(
        coupons, new_coupon, token_for, discount_type="PERCENT", discount_value=10
    )
    reply = await reserve(kafka, user_id, uc, 110_000)
    assert reply["type"] == "CouponReserved" and reply["discount"] == 11_000


async def test_a_replayed_reserve_repeats_its_answer_and_changes_nothing(
    coupons, new_coupon, token_for, kafka: KafkaProbe, sql
) -> None:
    user_id, uc = await issued_coupon(coupons, new_coupon, token_for)
    command = ReserveCoupon(
        order_id=str(uuid.uuid4()),
        operation_id=str(uuid.uuid4()),
        user_id=user_id,
        user_coupon_id=uc,
        subtotal=10_000,
    )

    await kafka.publish(command)
    await kafka.publish(command)  # a re-sent command: new message id, same operation

    replies = await kafka.wait_for(
        "coupon.replies", lambda e: e["payload"]["operation_id"] == command.operation_id, count=2
    )
    assert [r["type"] for r in replies] == ["CouponReserved", "CouponReserved"]
    assert await state_of(sql, uc) == ("USED", command.order_id)
    ops = await sql("SELECT count(*) AS n FROM coupon_operations WHERE user_coupon_id = $1", uc)
    assert ops[0]["n"] == 1


async def test_unusable_coupons_fail_with_nothing_changed(
    coupons, new_coupon, token_for, admin, kafka: KafkaProbe, sql
) -> None:
    owner, uc = await issued_coupon(coupons, new_coupon, token_for, min_order_amount=50_000)
    _, revoked = await issued_coupon(coupons, new_coupon, token_for)
    await coupons.post(f"/api/user-coupons/{revoked}/revoke", headers=admin)

    not_mine = await reserve(kafka, str(uuid.uuid4()), uc, 60_000)
    below_minimum = await reserve(kafka, owner, uc, 49_999)
    unknown = await reserve(kafka, owner, str(uuid.uuid4()), 60_000)
    [holder] = await sql("SELECT user_id FROM user_coupons WHERE id = $1", revoked)
    was_revoked = await reserve(kafka, holder["user_id"], revoked, 60_000)

    for reply in (not_mine, below_minimum, unknown, was_revoked):
        assert reply["type"] == "CouponReservationFailed", reply
        assert reply["reason"] == "COUPON_NOT_USABLE"
    assert await state_of(sql, uc) == ("ISSUED", None)
    assert await state_of(sql, revoked) == ("REVOKED", None)


async def test_an_expired_coupon_is_refused(
    coupons, new_coupon, token_for, kafka: KafkaProbe, clock: FrozenClock, sql
) -> None:
    user_id, uc = await issued_coupon(coupons, new_coupon, token_for, valid_days=30)

    clock.advance(days=30, seconds=1)
    try:
        reply = await reserve(kafka, user_id, uc, 20_000)
    finally:
        clock.advance(days=-30, seconds=-1)

    assert reply["type"] == "CouponReservationFailed" and "expired" in reply["detail"]
    assert await state_of(sql, uc) == ("ISSUED", None)


async def test_the_same_coupon_in_5_concurrent_orders_goes_to_exactly_one(
    coupons, new_coupon, token_for, kafka: KafkaProbe, sql
) -> None:
    user_id, uc = await issued_coupon(coupons, new_coupon, token_for)
    orders = [str(uuid.uuid4()) for _ in range(5)]

    replies = await asyncio.gather(*[reserve(kafka, user_id, uc, 20_000, o) for o in orders])

    winners = [o for o, r in zip(orders, replies, strict=True) if r["type"] == "CouponReserved"]
    assert len(winners) == 1
    assert await state_of(sql, uc) == ("USED", winners[0])


async def test_release_gives_the_coupon_back_and_only_for_the_order_that_used_it(
    coupons, new_coupon, token_for, kafka: KafkaProbe, sql
) -> None:
    user_id, uc = await issued_coupon(coupons, new_coupon, token_for)
    order_id = str(uuid.uuid4())
    await reserve(kafka, user_id, uc, 20_000, order_id)

    stranger = await release(kafka, str(uuid.uuid4()), uc)
    assert stranger["type"] == "CouponReleased"
    assert await state_of(sql, uc) == ("USED", order_id)

    released = await release(kafka, order_id, uc)
    assert released["type"] == "CouponReleased"
    [row] = await sql("SELECT status, order_id, used_at FROM user_coupons WHERE id = $1", uc)
    assert (row["status"], row["order_id"], row["used_at"]) == ("ISSUED", None, None)
    again = await reserve(kafka, user_id, uc, 20_000)
    assert again["type"] == "CouponReserved"


async def test_a_release_before_its_reserve_voids_the_reserve(
    coupons, new_coupon, token_for, kafka: KafkaProbe, sql
) -> None:
    user_id, uc = await issued_coupon(coupons, new_coupon, token_for)
    order_id = str(uuid.uuid4())

    released = await release(kafka, order_id, uc)
    late = await reserve(kafka, user_id, uc, 20_000, order_id)

    assert released["type"] == "CouponReleased"
    assert late["type"] == "CouponReservationFailed"
    assert await state_of(sql, uc) == ("ISSUED", None)


async def test_the_order_holding_the_coupon_re_reserves_it_with_a_new_subtotal(
    coupons, new_coupon, token_for, kafka: KafkaProbe, sql
) -> None:
    user_id, uc = await issued_coupon(
        coupons,
        new_coupon,
        token_for,
        discount_type="PERCENT",
        discount_value=10,
        min_order_amount=10_000,
    )
    order_id = str(uuid.uuid4())
    first = await reserve(kafka, user_id, uc, 50_000, order_id)

    modified = await reserve(kafka, user_id, uc, 30_000, order_id)
    too_small = await reserve(kafka, user_id, uc, 9_000, order_id)

    assert (first["discount"], modified["discount"]) == (5_000, 3_000)
    assert too_small["type"] == "CouponReservationFailed"
    assert await state_of(sql, uc) == ("USED", order_id)


async def test_repricing_quotes_the_new_subtotal_and_leaves_the_coupon_as_it_is(
    coupons, new_coupon, token_for, kafka: KafkaProbe, clock: FrozenClock, sql
) -> None:
    user_id, uc = await issued_coupon(
        coupons,
        new_coupon,
        token_for,
        discount_type="PERCENT",
        discount_value=10,
        min_order_amount=10_000,
        valid_days=1,
    )
    order_id = str(uuid.uuid4())
    assert (await reserve(kafka, user_id, uc, 50_000, order_id))["discount"] == 5_000
    [before] = await sql("SELECT status, order_id, used_at FROM user_coupons WHERE id = $1", uc)

    cheaper = await reprice(kafka, order_id, uc, 30_001)
    clock.advance(days=2)  # past its expiry: it was valid when the order took it
    try:
        later = await reprice(kafka, order_id, uc, 10_000)
    finally:
        clock.advance(days=-2)
    too_small = await reprice(kafka, order_id, uc, 9_999)
    other_order = await reprice(kafka, str(uuid.uuid4()), uc, 50_000)

    assert (cheaper["type"], cheaper["discount"]) == ("CouponRepriced", 3_000)
    assert (later["type"], later["discount"]) == ("CouponRepriced", 1_000)
    for refused in (too_small, other_order):
        assert refused["type"] == "CouponRepricingFailed", refused
        assert refused["reason"] == "COUPON_NOT_USABLE"
    assert "minimum of 10000" in too_small["detail"]
    [after] = await sql("SELECT status, order_id, used_at FROM user_coupons WHERE id = $1", uc)
    assert after == before


async def test_a_re_sent_reprice_repeats_its_answer_even_after_a_release(
    coupons, new_coupon, token_for, kafka: KafkaProbe, sql
) -> None:
    user_id, uc = await issued_coupon(
        coupons, new_coupon, token_for, discount_type="FIXED", discount_value=3_000
    )
    order_id = str(uuid.uuid4())
    await reserve(kafka, user_id, uc, 20_000, order_id)
    command = RepriceCoupon(
        order_id=order_id, operation_id=str(uuid.uuid4()), user_coupon_id=uc, subtotal=2_000
    )
    await kafka.publish(command)
    await reply_to(kafka, command.operation_id)

    await release(kafka, order_id, uc)
    await kafka.publish(command)  # re-sent: new message id, same operation

    replies = await kafka.wait_for(
        "coupon.replies", lambda e: e["payload"]["operation_id"] == command.operation_id, count=2
    )
    assert [(r["type"], r["payload"]["discount"]) for r in replies] == [
        ("CouponRepriced", 2_000),
        ("CouponRepriced", 2_000),
    ]
    [op] = await sql(
        "SELECT kind, outcome, discount FROM coupon_operations WHERE operation_id = $1",
        command.operation_id,
    )
    assert tuple(op) == ("REPRICE", "REPRICED", 2_000)
