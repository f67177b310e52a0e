"""Orders paid in full by a coupon, and late approvals found by reconciliation, against real
PostgreSQL and Kafka and the real payment-mock app (served in-process over HTTP)."""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from contracts.catalog import StockReleased
from contracts.coupon import CouponReserved
from contracts.wallet import WalletRefunded
from order import service
from order.provider import PaymentProvider, ProviderUnavailable, merchant_headers
from order.reconcile import reconcile_payments
from order.saga import PaymentsCancelled, PaymentTimedOut
from order.settings import Settings
from payment_mock.main import build_app as build_provider
from payment_mock.settings import Settings as ProviderSettings
from shopdev.testing import Infra, KafkaProbe, create_database, poll, session_keys, unique_name
from shopkit.clock import system_clock
from shopkit.db import Database

from .conftest import headers_for
from .test_order_saga import place, reserved, status_of
from .test_parking import history_events
from .test_payment_worker import put_in_paying

PROVIDER_DIR = Path(__file__).resolve().parents[2] / "payment-mock"


@pytest.fixture
async def provider_url(infra: Infra, kafka_namespace: str) -> AsyncIterator[str]:
    """The payment-mock app with its own database, on a real port of this process."""
    conf = ProviderSettings(
        database_url=await create_database(infra, PROVIDER_DIR, unique_name("payment-mock")),
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        log_json=False,
        jwt_public_keys=session_keys().public_keys,
        merchant_key=session_keys().merchant_key,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(build_provider(conf), log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await poll(lambda: asyncio.sleep(0, server.started), timeout=20)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


async def test_a_full_coupon_pays_the_order_without_wallet_or_provider(
    order: httpx.AsyncClient, settings: Settings, kafka: KafkaProbe
) -> None:
    """Total 0: PAID with the stock committed and the coupon used, no debit and no payment
    (this app's provider address has nothing listening: a call would have failed it)."""
    user = str(uuid.uuid4())
    oid = (await place(order, settings, user, coupon_id="c-full"))["id"]
    await kafka.publish(reserved(oid))
    await kafka.wait_for("coupon.commands", lambda e: e["key"] == oid)
    await kafka.publish(
        CouponReserved(
            order_id=oid,
            operation_id=f"{oid}:place:coupon",
            user_coupon_id="c-full",
            discount=20_000,
        )
    )
    paid = await poll(
        lambda: status_of(order, settings, oid), until=lambda o: o["status"] != "PENDING"
    )
    assert (paid["status"], paid["subtotal"], paid["discount"], paid["total"]) == (
        "PAID",
        20_000,
        20_000,
        0,
    )
    [event] = await kafka.wait_for("order.events", lambda e: e["key"] == oid)
    assert (event["type"], event["payload"]["total"]) == ("OrderPaid", 0)
    await kafka.wait_for(
        "catalog.commands", lambda e: e["key"] == oid and e["type"] == "CommitStock"
    )
    assert [e for e in await kafka.read_all("wallet.commands") if e["key"] == oid] == []
    history = (await order.get(f"/api/orders/{oid}/history", headers=_admin(settings))).json()
    events = [h["event"] for h in history]
    assert "PaymentSkipped" in events and "PaymentApproved" not in events
    mine = await order.get(f"/api/users/{user}/orders", headers=headers_for(settings, user))
    assert mine.status_code == 200, mine.text
    assert [(o["id"], o["total"]) for o in mine.json()["items"]] == [(oid, 0)]


def _admin(settings: Settings) -> dict[str, str]:
    return headers_for(settings, "ops", "admin")


class FailingFor(PaymentProvider):
    """The real provider, except that every look-up of one order fails (503)."""

    def __init__(self, order_id: str, settings: Settings) -> None:
        super().__init__(settings)
        self.failing = order_id

    async def cancel_approved(self, *, order_id: str) -> tuple[str, ...]:
        if order_id == self.failing:
            raise ProviderUnavailable("lookup HTTP 503")
        return await super().cancel_approved(order_id=order_id)


async def failed_after_timeout(db: Database, settings: Settings) -> str:
    """An order whose payment call timed out, voided (nothing found) and compensated: FAILED."""
    oid = await put_in_paying(db, settings)
    user = (await service.read_order(db, order_id=oid)).user_id  # type: ignore[union-attr]
    steps = (
        PaymentTimedOut("no answer in 3s"),
        PaymentsCancelled(()),
        WalletRefunded(
            order_id=oid,
            operation_id=f"{oid}:place:refund",
            user_id=user,
            amount=20_000,
            balance=20_000,
            transaction_id=str(uuid.uuid4()),
        ),
        StockReleased(order_id=oid, operation_id=f"{oid}:place:stock"),
    )
    for event in steps:
        async with db.transaction() as conn:
            await service.apply_events(
                conn, settings=settings, events=[(oid, event, None)], now=system_clock()
            )
    row = await service.read_order(db, order_id=oid)
    assert row is not None and row.status == "FAILED"
    return oid


async def test_a_late_approval_for_a_failed_order_is_cancelled_by_reconciliation(
    settings: Settings, own_db: Database, provider_url: str
) -> None:
    conf = settings.model_copy(update={"payment_url": provider_url, "reconcile_batch": 1})
    oid = await failed_after_timeout(own_db, conf)
    # The provider records the order's payment only now, long after the void looked for it.
    async with httpx.AsyncClient(base_url=provider_url, headers=merchant_headers(conf)) as client:
        r = await client.post(
            "/api/payments",
            json={"order_id": oid, "amount": 20_000},
            headers={"Idempotency-Key": oid},
        )
        assert r.status_code == 201 and r.json()["status"] == "APPROVED", r.text
        payment_id = r.json()["payment_id"]

        # A check the provider cannot answer for, due before ours.
        bad = "order-the-provider-fails-for"
        async with own_db.autocommit() as conn:
            await conn.execute(
                "INSERT INTO payment_checks (order_id, due_at, checks)"
                " SELECT $1, min(due_at) - interval '1 second', 0 FROM payment_checks",
                bad,
            )
        later = system_clock() + timedelta(seconds=conf.reconcile_delay_seconds + 1)
        provider = FailingFor(bad, conf)
        try:
            runs = [
                await reconcile_payments(own_db, provider, settings=conf, clock=lambda: later)
                for _ in range(3)
            ]
        finally:
            await provider.close()
        assert runs == [1, 1, 0]  # one order per run, and the failing one held no one back

        assert (await client.get(f"/api/payments/{payment_id}")).json()["status"] == "CANCELLED"
    assert (await history_events(own_db, oid))[-1] == "LatePaymentCancelled"
    async with own_db.autocommit() as conn:
        checks = {
            r["order_id"]: (r["checks"], r["due_at"])
            for r in await conn.fetch("SELECT order_id, checks, due_at FROM payment_checks")
        }
    assert checks[oid][0] == 1 and checks[oid][1] > later  # looked up again later, less often
    assert checks[bad][0] == 1 and checks[bad][1] > later  # tried again after its lease
