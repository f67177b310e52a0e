"""The issue endpoint answers every POST to the issue route as FastAPI would answer the route's
declaration: the same problems for bad bodies, queries and tokens, in the same order."""

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from coupon.issue_endpoint import ISSUE_ROUTE, IssueEndpoint
from coupon.main import build_app
from coupon.settings import Settings
from shopkit.auth import TokenVerifier
from shopkit.errors import problem_body

from .conftest import NewCoupon

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
async def declared(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app without the issue endpoint: FastAPI checks requests against the declaration
    (whose body never runs; no request below gets that far)."""
    app = build_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not IssueEndpoint]
    app.state.verifier = TokenVerifier.from_settings(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def cases(me: str, token: dict[str, str]) -> list[tuple[str, dict[str, str], bytes]]:
    """(query, headers, body) of requests refused before the issue queue is asked."""
    body = json.dumps({"user_id": me}).encode()
    return [
        ("", JSON, body),  # no token
        ("", JSON | {"authorization": "Basic abc"}, body),
        ("", JSON | {"authorization": "Bearer "}, body),
        ("", JSON | {"authorization": "Bearer not.a.token"}, body),
        ("", JSON, b'{"user_id": '),  # bad JSON is refused before the token is read
        ("", JSON | token, b'{"user_id": '),
        ("", JSON | token, b"\xff\xfe"),
        ("", JSON | token, b""),
        ("", JSON | token, b"null"),
        ("", JSON | token, b"[]"),
        ("", JSON | token, b'{"user_id": NaN}'),
        ("", JSON | token, json.dumps({"user_id": me, "status": "ISSUED"}).encode()),
        ("", JSON | token, json.dumps({"user_id": ""}).encode()),
        ("", JSON | token, json.dumps({"user_id": "x" * 37}).encode()),
        ("", JSON | token, json.dumps({"user_id": 7}).encode()),
        ("", token, body),  # no content type
        ("", {"content-type": "text/plain"} | token, body),
        ("wait=maybe", JSON | token, body),
        ("wait=", JSON | token, body),
        ("wait=yes&wait=later", JSON | token, json.dumps({"user": me}).encode()),
    ]


async def test_refusals_are_the_declared_routes(
    coupons: httpx.AsyncClient,
    declared: httpx.AsyncClient,
    new_coupon: NewCoupon,
    token_for: Callable[..., dict[str, str]],
) -> None:
    coupon, me = await new_coupon(), str(uuid.uuid4())
    for query, headers, body in cases(me, token_for(me)):
        url = f"/api/coupons/{coupon['id']}/issue" + (f"?{query}" if query else "")
        answered = await coupons.post(url, content=body, headers=headers)
        expected = await declared.post(url, content=body, headers=headers)
        case = (query, headers, body)
        assert answered.status_code == expected.status_code, (case, expected.text)
        assert answered.status_code in (400, 401, 422), (case, answered.text)
        assert answered.json() == expected.json(), case
        assert answered.headers["content-type"] == expected.headers["content-type"], case


async def test_other_methods_are_the_routers(
    coupons: httpx.AsyncClient, declared: httpx.AsyncClient, token_for: Callable[..., Any]
) -> None:
    url, headers = f"/api/coupons/{uuid.uuid4()}/issue", token_for(str(uuid.uuid4()))
    answered = await coupons.get(url, headers=headers)
    expected = await declared.get(url, headers=headers)
    assert answered.status_code == expected.status_code == 405
    assert answered.json() == expected.json()


async def test_refusals_from_the_queue_are_problems_as_the_handlers_write_them(
    coupons: httpx.AsyncClient, new_coupon: NewCoupon, token_for: Callable[..., Any]
) -> None:
    coupon, holder, late = await new_coupon(total_quantity=1), str(uuid.uuid4()), str(uuid.uuid4())
    url = f"/api/coupons/{coupon['id']}/issue"
    placed = await coupons.post(url, json={"user_id": holder}, headers=token_for(holder))
    assert placed.status_code == 202, placed.text

    sold_out = await coupons.post(url, json={"user_id": late}, headers=token_for(late))
    missing = await coupons.post(
        f"/api/coupons/{uuid.uuid4()}/issue", json={"user_id": late}, headers=token_for(late)
    )

    assert sold_out.status_code == 409
    assert sold_out.json() == problem_body(
        409, "SOLD_OUT", "Sold out", "every coupon has been taken"
    )
    assert missing.status_code == 404 and missing.json()["code"] == "COUPON_NOT_FOUND"
    for refused in (sold_out, missing):
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["x-correlation-id"]


async def test_the_caller_correlation_id_is_echoed(
    coupons: httpx.AsyncClient, new_coupon: NewCoupon, token_for: Callable[..., Any]
) -> None:
    coupon, me = await new_coupon(), str(uuid.uuid4())
    answered = await coupons.post(
        f"/api/coupons/{coupon['id']}/issue",
        json={"user_id": me},
        headers=token_for(me) | {"X-Correlation-ID": "issue-7"},
    )
    assert answered.status_code == 202, answered.text
    assert answered.headers["x-correlation-id"] == "issue-7"


def issue_count(metrics_text: str, status: str) -> float:
    prefix = "shop_http_request_duration_seconds_count{"
    labels = f'method="POST",route="{ISSUE_ROUTE}",status="{status}"'
    for line in metrics_text.splitlines():
        if line.startswith(prefix) and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_each_answer_is_timed_once_under_the_route_template(
    coupons: httpx.AsyncClient, new_coupon: NewCoupon, token_for: Callable[..., Any]
) -> None:
    coupon, me = await new_coupon(), str(uuid.uuid4())
    before = (await coupons.get("/metrics")).text
    url = f"/api/coupons/{coupon['id']}/issue"

    assert (await coupons.post(url, json={"user_id": me}, headers=token_for(me))).status_code == 202
    assert (await coupons.post(url, json={"user_id": me}, headers=token_for(me))).status_code == 409
    assert (await coupons.post(url, json={"user_id": me})).status_code == 401

    after = (await coupons.get("/metrics")).text
    assert issue_count(after, "2xx") == issue_count(before, "2xx") + 1
    assert issue_count(after, "4xx") == issue_count(before, "4xx") + 2
