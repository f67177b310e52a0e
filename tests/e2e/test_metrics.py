"""/metrics of every service, scraped on its own port while a small load runs through the gateway:
each series the operators' dashboard uses is there, and moves with what the shop does."""

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from shopdev.testing import database_refusing, poll, repo_root
from shopkit.db import asyncpg_dsn
from shopkit.outbox import RELAY_LOCK_ID

from .conftest import Stack, User, log_tail

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(stack: Stack, service: str, **headers: str) -> Samples:
    response = await stack.client.get(f"{stack.process(service).url}/metrics", headers=headers)
    assert response.status_code == 200, response.text + log_tail(stack, service)
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def has(samples: Samples, name: str, **labels: str) -> bool:
    wanted = set(labels.items())
    return any(n == name and wanted <= found for (n, found) in samples)


async def moved(stack: Stack, service: str, name: str, beyond: float, **labels: str) -> float:
    async def read() -> float:
        return total(await scrape(stack, service), name, **labels)

    return await poll(
        read, until=lambda v: v > beyond, timeout=20, interval=0.2, message=f"{service} {name}"
    )


SERVICES = ("wallet", "catalog", "order", "coupon", "payment-mock", "analytics")


async def test_every_service_serves_its_kit_series_on_its_own_port_only(stack: Stack) -> None:
    for service in SERVICES:
        samples = await scrape(stack, service)
        for name in ("shop_outbox_backlog", "shop_outbox_oldest_age_seconds"):
            assert has(samples, name), (service, name)
        assert has(samples, "shop_outbox_sent_total"), service
        assert total(samples, "shop_db_pool_size", pool="asyncpg") > 0, service
        assert has(samples, "shop_db_pool_in_use", pool="asyncpg"), service
        for source in ("outbox", "dead_letters"):
            assert total(samples, "shop_metrics_source_up", source=source) == 1, (service, source)
        assert has(samples, "shop_http_request_duration_seconds_count", route="/ready")
    for service in ("wallet", "catalog", "order", "coupon", "analytics"):
        samples = await scrape(stack, service)
        assert has(samples, "shop_consumer_lag"), service
        assert total(samples, "shop_metrics_source_up", source="kafka") == 1, service

    through_gateway = await stack.client.get("/metrics")
    forwarded = await stack.client.get(
        f"{stack.process('order').url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert (through_gateway.status_code, forwarded.status_code) == (404, 404)


async def test_orders_move_http_consumer_outbox_and_saga_series(stack: Stack) -> None:
    user = await stack.new_user(balance=100_000)
    product = await stack.new_product(price=1_000, stock=50)
    before = {s: await scrape(stack, s) for s in ("order", "catalog")}
    route = {"method": "POST", "route": "/api/orders", "status": "2xx"}
    requests = total(before["order"], "shop_http_request_duration_seconds_count", **route)
    missing_route = {"route": "/api/orders/{order_id}", "status": "4xx"}
    refused = total(before["order"], "shop_http_request_duration_seconds_count", **missing_route)
    position = total(before["catalog"], "shop_consumer_position", topic="catalog.commands")
    sent = total(before["order"], "shop_outbox_sent_total")

    await stack.set_payment_behavior(latency_ms=1_000)  # within the order's 3 s timeout
    try:
        placed = await place(stack, user, product)
        # The payment takes a while: the saga waits in a step, and the order's gauges show it
        # (its parked count, 0, beside it: a step's series exist only while a saga is in it).
        await poll(
            lambda: scrape(stack, "order"),
            until=lambda s: total(s, "shop_sagas_in_flight") > 0 and has(s, "shop_sagas_parked"),
            timeout=20,
            interval=0.2,
            message="order saga gauges",
        )
        # Settled either way: on a busy machine the slow payment may pass the order's timeout.
        await poll(
            lambda: order_status(stack, user, placed),
            until=lambda s: s in ("PAID", "FAILED"),
            timeout=30,
            message="order settled",
        )
    finally:
        await stack.set_payment_behavior()
    await place(stack, user, product)
    missing = await stack.client.get(f"/api/orders/{uuid.uuid4()}", headers=user.headers)
    assert missing.status_code == 404

    await moved(stack, "order", "shop_http_request_duration_seconds_count", requests + 1, **route)
    await moved(
        stack, "order", "shop_http_request_duration_seconds_count", refused, **missing_route
    )
    await moved(stack, "catalog", "shop_consumer_position", position, topic="catalog.commands")
    await moved(stack, "order", "shop_outbox_sent_total", sent)
    latency = await scrape(stack, "order")
    assert total(latency, "shop_http_request_duration_seconds_sum", **route) > 0


async def place(stack: Stack, user: User, product: str) -> str:
    body = {"user_id": user.id, "items": [{"product_id": product, "quantity": 1}]}
    response = await stack.client.post("/api/orders", json=body, headers=user.headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def order_status(stack: Stack, user: User, order_id: str) -> Any:
    response = await stack.client.get(f"/api/orders/{order_id}", headers=user.headers)
    return response.json().get("status")


async def test_a_stopped_relay_shows_as_outbox_backlog_and_age(stack: Stack) -> None:
    async with relay_held(stack, "catalog"):
        await stack.new_product(price=500, stock=1)
        await moved(stack, "catalog", "shop_outbox_backlog", 0)
        await moved(stack, "catalog", "shop_outbox_oldest_age_seconds", 0.5)

    async def backlog() -> float:
        return total(await scrape(stack, "catalog"), "shop_outbox_backlog")

    await poll(backlog, until=lambda n: n == 0, timeout=20, interval=0.2, message="drained")


@asynccontextmanager
async def relay_held(stack: Stack, service: str) -> AsyncIterator[None]:
    """Take the service's relay lock away from its relay (which waits to get it back)."""
    conn = await asyncpg.connect(asyncpg_dsn(stack.db_url(service)))
    admin = await asyncpg.connect(stack.infra.pg_admin_url)
    try:
        database = await conn.fetchval("SELECT current_database()")

        async def took() -> bool:
            await admin.execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d"
                " ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.objid = $1"
                " AND l.granted AND d.datname = $2 AND l.pid <> $3",
                RELAY_LOCK_ID,
                database,
                conn.get_server_pid(),
            )
            return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_ID))

        await poll(took, timeout=20, interval=0.1, message="relay lock taken")
        yield
    finally:
        await admin.close()
        await conn.close()


async def test_a_garbage_record_shows_as_a_dead_letter_by_topic(stack: Stack) -> None:
    labels = {"topic": "catalog.replies", "status": "DEAD"}
    before = total(await scrape(stack, "order"), "shop_dead_letters", **labels)
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.kafka_bootstrap)
    await producer.start()
    try:
        topic = f"{stack.namespace}catalog.replies"
        await producer.send_and_wait(topic, b"not an envelope", key=b"metrics-test")
    finally:
        await producer.stop()
    await moved(stack, "order", "shop_dead_letters", before, **labels)


async def test_issuing_coupons_moves_the_line_and_the_fast_lane_route(stack: Stack) -> None:
    created = await stack.client.post(
        "/api/coupons",
        json={
            "name": "metrics",
            "discount_type": "FIXED",
            "discount_value": 100,
            "total_quantity": 5,
        },
        headers=stack.admin,
    )
    assert created.status_code == 201, created.text
    before = await scrape(stack, "coupon")
    route = {"route": "/api/coupons/{coupon_id}/issue", "status": "2xx"}
    issued = total(before, "shop_http_request_duration_seconds_count", **route)
    placed = total(before, "shop_coupon_line_placed_total")
    assert has(before, "shop_coupon_line_waiting")

    for _ in range(3):
        user = await stack.new_user()
        answer = await stack.client.post(
            f"/api/coupons/{created.json()['id']}/issue",
            json={"user_id": user.id},
            headers=user.headers,
        )
        assert answer.status_code in (200, 202), answer.text

    await moved(stack, "coupon", "shop_http_request_duration_seconds_count", issued + 2, **route)
    await moved(stack, "coupon", "shop_coupon_line_placed_total", placed + 2)


async def test_metrics_answer_during_a_database_outage_with_what_they_knew(stack: Stack) -> None:
    known = await scrape(stack, "analytics")
    assert total(known, "shop_metrics_source_up", source="outbox") == 1
    lag = {"group": "analytics-projection", "topic": "catalog.events"}

    async with database_refusing(stack.infra.pg_admin_url, stack.db_url("analytics")):
        # The projection waits the outage out: what arrives meanwhile is lag, polled or not.
        await stack.new_product(price=700, stock=1)
        await moved(stack, "analytics", "shop_consumer_lag", 0, **lag)
        away = await scrape(stack, "analytics")

    assert total(away, "shop_metrics_source_up", source="outbox") == 0
    assert total(away, "shop_metrics_source_up", source="kafka") == 1
    assert has(away, "shop_outbox_backlog") and has(
        away, "shop_http_request_duration_seconds_count"
    )
    back = await poll(
        lambda: scrape(stack, "analytics"),
        until=lambda s: (
            total(s, "shop_metrics_source_up", source="outbox") == 1
            and total(s, "shop_consumer_lag", **lag) == 0
        ),
        timeout=30,
        interval=0.2,
        message="metrics read the database again and the projection caught up",
    )
    assert has(back, "shop_outbox_backlog")


async def test_every_metric_the_dashboard_queries_is_in_a_real_scrape(stack: Stack) -> None:
    exposed: set[str] = set()
    for service in SERVICES:
        response = await stack.client.get(f"{stack.process(service).url}/metrics")
        for family in text_string_to_metric_families(response.text):
            exposed |= {family.name, *(sample.name for sample in family.samples)}
    path = repo_root() / "infra" / "observability" / "grafana" / "dashboards" / "shop.json"
    queried = set(re.findall(r"\b(?:shop|process|python)_[a-z_]+\b", path.read_text()))
    assert queried and queried <= exposed, queried - exposed
