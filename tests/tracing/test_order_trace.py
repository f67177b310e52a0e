"""One order is one trace: HTTP -> outbox -> Kafka -> catalog, wallet -> the payment provider.

The wallet, catalog, order and payment-mock run in this process on real PostgreSQL and Kafka
(the payment-mock behind a real HTTP server, since the order calls it over HTTP), each with its
own tracer provider, all exporting to one in-memory exporter.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.types import Receive, Scope, Send

from catalog.main import build_app as catalog_app
from catalog.settings import Settings as CatalogSettings
from contracts.topics import CATALOG_COMMANDS
from order.main import build_app as order_app
from order.settings import Settings as OrderSettings
from payment_mock.main import build_app as payment_app
from payment_mock.settings import Settings as PaymentSettings
from shopdev.stack import free_port
from shopdev.testing import Infra, create_database, new_namespace, poll, serve, session_keys
from shopdev.testing import unique_name as db_name
from shopkit import tracing
from wallet.main import build_app as wallet_app
from wallet.settings import Settings as WalletSettings

ROOT = Path(__file__).resolve().parents[2]
ADMIN = session_keys().headers("tracing-admin", role="admin")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.export_to(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.reset()


@asynccontextmanager
async def listening(app: FastAPI, port: int, seen: list[dict[bytes, bytes]]) -> AsyncIterator[None]:
    """`app` behind a real HTTP server on `port`, in this event loop; the headers of every
    request it gets go to `seen`."""

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            seen.append(dict(scope["headers"]))
        await app(scope, receive, send)

    server = uvicorn.Server(
        uvicorn.Config(recording, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    await poll(lambda: asyncio.sleep(0, server.started), timeout=30, message="provider up")
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def test_an_order_is_one_trace_from_post_to_paid_and_its_cancel_continues_it(
    infra: Infra, spans: InMemorySpanExporter
) -> None:
    namespace = await new_namespace(infra, "tr")
    common: dict[str, Any] = {
        "kafka_bootstrap": infra.kafka_bootstrap,
        "kafka_namespace": namespace,
        "log_json": False,
        "jwt_public_keys": session_keys().public_keys,
    }
    urls = {
        name: await create_database(infra, ROOT / "services" / name, db_name(name))
        for name in ("wallet", "catalog", "order", "payment-mock")
    }
    port = free_port()
    merchant = session_keys().merchant_key
    async with AsyncExitStack() as stack:
        payments = payment_app(
            PaymentSettings(database_url=urls["payment-mock"], merchant_key=merchant, **common)
        )
        provider_saw: list[dict[bytes, bytes]] = []
        await stack.enter_async_context(listening(payments, port, provider_saw))
        wallet = await stack.enter_async_context(
            serve(
                wallet_app(
                    WalletSettings(
                        database_url=urls["wallet"],
                        admin_password="tracing-admin-password",
                        argon2_time_cost=1,
                        argon2_memory_kib=1024,
                        jwt_private_key=session_keys().private_key,
                        **common,
                    )
                )
            )
        )
        catalog = await stack.enter_async_context(
            serve(catalog_app(CatalogSettings(database_url=urls["catalog"], **common)))
        )
        order = await stack.enter_async_context(
            serve(
                order_app(
                    OrderSettings(
                        database_url=urls["order"],
                        payment_url=f"http://127.0.0.1:{port}",
                        merchant_key=merchant,
                        **common,
                    )
                )
            )
        )

        email = f"traced-{uuid.uuid4().hex[:8]}@example.com"
        created = await wallet.post(
            "/api/users", json={"name": "Traced", "email": email, "password": "tracing-pass"}
        )
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        user = session_keys().headers(user_id)
        charged = await wallet.post(
            f"/api/users/{user_id}/balance/charge", json={"amount": 50_000}, headers=user
        )
        assert charged.status_code == 200, charged.text
        product = await catalog.post(
            "/api/products",
            json={"name": "Traced lamp", "category": "ELECTRONICS", "price": 10_000, "stock": 5},
            headers=ADMIN,
        )
        assert product.status_code == 201, product.text

        cid = f"trace-test-{uuid.uuid4().hex[:8]}"
        placed = await order.post(
            "/api/orders",
            params={"wait": "true"},
            json={
                "user_id": user_id,
                "items": [{"product_id": product.json()["id"], "quantity": 2}],
            },
            headers={**user, "X-Correlation-Id": cid},
        )
        assert placed.status_code == 200, placed.text
        assert placed.json()["status"] == "PAID", placed.text
        order_id = placed.json()["id"]

        post = _one(spans.get_finished_spans(), "order", "POST /api/orders", SpanKind.SERVER)
        trace_id = post.context.trace_id
        history = await order.get(f"/api/orders/{order_id}/history", headers=user)
        assert {h["trace_id"] for h in history.json()} == {f"{trace_id:032x}"}

        in_trace = await poll(
            lambda: _settled(spans, trace_id),
            until=lambda found: {"catalog", "wallet", "payment-mock"} <= _services(found),
            timeout=15,
            message="spans of every service in the order's trace",
        )
        consumed = [s for s in in_trace if s.kind == SpanKind.CONSUMER]
        assert {_service(s) for s in consumed} >= {"catalog", "wallet", "order"}
        # Each Kafka hop is the child of the span that queued the message, in another service.
        by_id = {s.context.span_id: s for s in in_trace}
        assert all(s.parent is not None and s.parent.span_id in by_id for s in consumed)
        assert all([link.context for link in s.links] == [s.parent] for s in consumed)
        reserve = next(s for s in consumed if s.name == "process ReserveStock")
        assert _service(by_id[reserve.parent.span_id]) == "order"  # type: ignore[union-attr]
        assert reserve.attributes and reserve.attributes["shop.correlation_id"] == cid
        # The provider call: the order's client span, the payment-mock's server span under it.
        call = _one(in_trace, "order", "provider PAYING", SpanKind.CLIENT)
        paid = [s for s in in_trace if _service(s) == "payment-mock" and s.kind == SpanKind.SERVER]
        assert any(s.parent and s.parent.span_id == call.context.span_id for s in paid)
        # ... and the provider got the order's correlation id and trace context.
        [asked] = [h for h in provider_saw if h.get(b"idempotency-key") == order_id.encode()]
        assert asked[b"x-correlation-id"] == cid.encode()
        assert asked[b"traceparent"].decode().split("-")[1] == f"{trace_id:032x}"
        assert await _header_traceparent(infra, namespace, order_id) == {f"{trace_id:032x}"}

        # A cancel, a request of its own, continues the order's trace and links its request.
        cancelled = await order.post(
            f"/api/orders/{order_id}/cancel", params={"wait": "true"}, headers=user
        )
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
        request = _one(
            _finished(spans), "order", "POST /api/orders/{order_id}/cancel", SpanKind.SERVER
        )
        assert request.context.trace_id != trace_id
        assert [link.context.trace_id for link in request.links] == [trace_id]
        after = await poll(
            lambda: _settled(spans, trace_id),
            until=lambda found: (
                any(s.name == "process ReleaseStock" for s in found)
                or any(s.name == "process ReturnStock" for s in found)
            ),
            timeout=15,
            message="the cancel's steps in the order's trace",
        )
        assert any(_service(s) == "wallet" and "Refund" in s.name for s in after)


def _finished(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(spans.get_finished_spans())


async def _settled(spans: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.context and s.context.trace_id == trace_id]


def _service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def _services(spans: list[ReadableSpan]) -> set[str]:
    return {_service(s) for s in spans}


def _one(spans: Any, service: str, name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if _service(s) == service and s.kind == kind and s.name == name]
    assert len(found) == 1, [(_service(s), s.name, s.kind) for s in spans]
    return found[0]


async def _header_traceparent(infra: Infra, namespace: str, order_id: str) -> set[str]:
    """The trace ids in the `traceparent` headers of the order's commands on Kafka."""
    consumer = AIOKafkaConsumer(
        f"{namespace}{CATALOG_COMMANDS.name}",
        bootstrap_servers=infra.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        found: set[str] = set()
        while batch := await consumer.getmany(timeout_ms=500):
            for records in batch.values():
                for r in records:
                    if r.key and r.key.decode() == order_id:
                        headers = dict(r.headers)
                        found.add(headers.get("traceparent", b"--").decode().split("-")[1])
        return found
    finally:
        await consumer.stop()
