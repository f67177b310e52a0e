"""Coupon definitions, issuing one at a time, lists and revoke over HTTP (real Postgres, Kafka)."""

import uuid
from datetime import datetime, timedelta

import httpx
import pytest

from contracts.wallet import UserRegistered
from shopdev.testing import KafkaProbe, poll
from shopkit.clock import FrozenClock


def user() -> str:
    return str(uuid.uuid4())


async def issue(
    client: httpx.AsyncClient, coupon_id: str, user_id: str, headers: dict[str, str], **params: str
) -> httpx.Response:
    return await client.post(
        f"/api/coupons/{coupon_id}/issue", json={"user_id": user_id}, params=params, headers=headers
    )


async def test_admin_defines_a_coupon_and_anyone_signed_in_reads_it(
    coupons: httpx.AsyncClient, admin, token_for
) -> None:
    body = {
        "name": "Welcome",
        "discount_type": "PERCENT",
        "discount_value": 10,
        "total_quantity": 5,
    }
    created = await coupons.post("/api/coupons", json=body, headers=admin)

    assert created.status_code == 201, created.text
    coupon = created.json()
    assert coupon["issued_quantity"] == 0 and coupon["valid_days"] == 30
    assert coupon["min_order_amount"] == 0
    read = await coupons.get(f"/api/coupons/{coupon['id']}", headers=token_for(user()))
    assert read.status_code == 200 and read.json() == coupon


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"discount_type": "PERCENT", "discount_value": 101}, "INVALID_COUPON"),
        ({"discount_value": 0}, "VALIDATION_ERROR"),
        ({"discount_type": "GIFT"}, "VALIDATION_ERROR"),
        ({"total_quantity": 0}, "VALIDATION_ERROR"),
        ({"valid_days": 0}, "VALIDATION_ERROR"),
        ({"valid_days": 366}, "VALIDATION_ERROR"),
        ({"min_order_amount": -1}, "VALIDATION_ERROR"),
        ({"discount_value": "1000"}, "VALIDATION_ERROR"),
        ({"issued_quantity": 5}, "VALIDATION_ERROR"),
    ],
)
async def test_bad_definitions_are_422(
    coupons: httpx.AsyncClient, admin, change: dict, code: str
) -> None:
    body = {"name": "x", "discount_type": "FIXED", "discount_value": 1_000, "total_quantity": 5}
    response = await coupons.post("/api/coupons", json=body | change, headers=admin)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


async def test_only_an_admin_defines_coupons(coupons: httpx.AsyncClient, token_for) -> None:
    body = {"name": "x", "discount_type": "FIXED", "discount_value": 1_000, "total_quantity": 5}
    assert (await coupons.post("/api/coupons", json=body)).status_code == 401
    forbidden = await coupons.post("/api/coupons", json=body, headers=token_for(user()))
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "FORBIDDEN")


async def test_unknown_coupon_is_404(coupons: httpx.AsyncClient, token_for) -> None:
    me = user()
    read = await coupons.get(f"/api/coupons/{uuid.uuid4()}", headers=token_for(me))
    issued = await issue(coupons, str(uuid.uuid4()), me, token_for(me))
    assert (read.status_code, read.json()["code"]) == (404, "COUPON_NOT_FOUND")
    assert (issued.status_code, issued.json()["code"]) == (404, "COUPON_NOT_FOUND")


async def test_issue_answers_pending_and_settles_to_issued_for_30_days(
    coupons: httpx.AsyncClient, new_coupon, token_for, clock: FrozenClock
) -> None:
    coupon, me = await new_coupon(total_quantity=3), user()
    headers = token_for(me)

    response = await issue(coupons, coupon["id"], me, headers)

    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "PENDING" and pending["user_id"] == me
    assert pending["name"] == coupon["name"] and pending["issued_at"] is None

    async def mine() -> dict:
        return (await coupons.get(f"/api/users/{me}/coupons", headers=headers)).json()["items"]

    [issued] = await poll(mine, until=lambda items: items[0]["status"] == "ISSUED")
    issued_at = datetime.fromisoformat(issued["issued_at"])
    assert issued["id"] == pending["id"] and issued_at == clock.now
    assert datetime.fromisoformat(issued["expires_at"]) == issued_at + timedelta(days=30)
    read = await coupons.get(f"/api/coupons/{coupon['id']}", headers=headers)
    assert read.json()["issued_quantity"] == 1


async def test_wait_returns_201_with_the_issued_coupon_and_valid_days(
    coupons: httpx.AsyncClient, new_coupon, token_for
) -> None:
    coupon, me = await new_coupon(valid_days=7), user()

    response = await issue(coupons, coupon["id"], me, token_for(me), wait="true")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "ISSUED"
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires - datetime.fromisoformat(body["issued_at"]) == timedelta(days=7)


async def test_a_second_request_of_the_same_user_is_already_issued(
    coupons: httpx.AsyncClient, new_coupon, token_for
) -> None:
    coupon, me = await new_coupon(), user()
    assert (await issue(coupons, coupon["id"], me, token_for(me))).status_code == 202
    again = await issue(coupons, coupon["id"], me, token_for(me))
    assert (again.status_code, again.json()["code"]) == (409, "ALREADY_ISSUED")


async def test_sold_out_after_the_last_one_and_holders_still_hear_already_issued(
    coupons: httpx.AsyncClient, new_coupon, token_for
) -> None:
    coupon = await new_coupon(total_quantity=1)
    first, second = user(), user()
    assert (await issue(coupons, coupon["id"], first, token_for(first))).status_code == 202

    late = await issue(coupons, coupon["id"], second, token_for(second))
    holder = await issue(coupons, coupon["id"], first, token_for(first))

    assert (late.status_code, late.json()["code"]) == (409, "SOLD_OUT")
    assert (holder.status_code, holder.json()["code"]) == (409, "ALREADY_ISSUED")


async def test_a_user_issues_only_for_themselves(
    coupons: httpx.AsyncClient, new_coupon, token_for
) -> None:
    coupon = await new_coupon()
    response = await issue(coupons, coupon["id"], user(), token_for(user()))
    assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN")


async def test_an_admin_issues_for_a_user_the_wallet_announced_and_not_for_a_ghost(
    coupons: httpx.AsyncClient, new_coupon, admin, kafka: KafkaProbe, clock: FrozenClock, sql
) -> None:
    coupon, known = await new_coupon(), user()
    await kafka.publish(
        UserRegistered(
            user_id=known, name="Lee", email="lee@example.com", role="user", registered_at=clock()
        )
    )

    ghost = await issue(coupons, coupon["id"], user(), admin)
    granted = await issue(coupons, coupon["id"], known, admin, wait="true")

    assert (ghost.status_code, ghost.json()["code"]) == (404, "USER_NOT_FOUND")
    assert granted.status_code == 201, granted.text
    assert granted.json()["user_id"] == known
    rows = await sql("SELECT user_id FROM user_coupons WHERE coupon_id = $1", coupon["id"])
    assert [r["user_id"] for r in rows] == [known]


async def test_unknown_fields_are_rejected(
    coupons: httpx.AsyncClient, new_coupon, token_for
) -> None:
    coupon, me = await new_coupon(), user()
    response = await coupons.post(
        f"/api/coupons/{coupon['id']}/issue",
        json={"user_id": me, "status": "ISSUED"},
        headers=token_for(me),
    )
    assert response.status_code == 422


async def test_the_list_filters_by_status_and_pages(
    coupons: httpx.AsyncClient, new_coupon, token_for, admin, clock: FrozenClock
) -> None:
    me = user()
    headers = token_for(me)
    ids = []
    for days in (1, 30, 30):
        coupon = await new_coupon(valid_days=days)
        response = await issue(coupons, coupon["id"], me, headers, wait="true")
        ids.append(response.json()["id"])
    revoked = await coupons.post(f"/api/user-coupons/{ids[2]}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "REVOKED"

    clock.advance(days=2)
    try:
        pages, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = await coupons.get(f"/api/users/{me}/coupons", params=params, headers=headers)
            pages.append(page.json()["items"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        by_status = {
            s: await coupons.get(f"/api/users/{me}/coupons", params={"status": s}, headers=headers)
            for s in ("ISSUED", "EXPIRED", "REVOKED", "USED")
        }
    finally:
        clock.advance(days=-2)

    assert [len(p) for p in pages] == [2, 1]
    assert [c["id"] for p in pages for c in p] == ids[::-1]
    assert [c["status"] for p in pages for c in p] == ["REVOKED", "ISSUED", "EXPIRED"]
    assert [c["id"] for c in by_status["ISSUED"].json()["items"]] == [ids[1]]
    assert [c["id"] for c in by_status["EXPIRED"].json()["items"]] == [ids[0]]
    assert [c["id"] for c in by_status["REVOKED"].json()["items"]] == [ids[2]]
    assert by_status["USED"].json()["items"] == []


async def test_lists_are_private_and_bad_filters_are_422(
    coupons: httpx.AsyncClient, token_for, admin
) -> None:
    me = user()
    other = await coupons.get(f"/api/users/{user()}/coupons", headers=token_for(me))
    bad = await coupons.get(
        f"/api/users/{me}/coupons", params={"status": "LOST"}, headers=token_for(me)
    )
    ghost = await coupons.get(f"/api/users/{user()}/coupons", headers=admin)
    assert (other.status_code, other.json()["code"]) == (403, "FORBIDDEN")
    assert bad.status_code == 422
    assert (ghost.status_code, ghost.json()["code"]) == (404, "USER_NOT_FOUND")


async def test_revoke_is_admin_only_and_refuses_pending_and_unknown(
    coupons: httpx.AsyncClient, new_coupon, token_for, admin, sql
) -> None:
    coupon, me = await new_coupon(), user()
    issued = (await issue(coupons, coupon["id"], me, token_for(me), wait="true")).json()

    by_user = await coupons.post(f"/api/user-coupons/{issued['id']}/revoke", headers=token_for(me))
    unknown = await coupons.post(f"/api/user-coupons/{uuid.uuid4()}/revoke", headers=admin)
    await sql("UPDATE user_coupons SET status = 'USED' WHERE id = $1", issued["id"])
    used = await coupons.post(f"/api/user-coupons/{issued['id']}/revoke", headers=admin)

    assert by_user.status_code == 403
    assert (unknown.status_code, unknown.json()["code"]) == (404, "USER_COUPON_NOT_FOUND")
    assert (used.status_code, used.json()["code"]) == (409, "COUPON_NOT_REVOCABLE")
