"""The payment worker against real PostgreSQL and a provider that never answers."""

import asyncio
import uuid
from types import SimpleNamespace

import pytest

from contracts.wallet import WalletDebited
from order import service
from order.main import listen
from order.payments import ProviderOutcomes, payment_worker
from order.saga import PaymentApproved
from order.settings import Settings
from order.store.sagas import PROVIDER_WORK_CHANNEL
from order.waiting import Waiters
from shopdev.testing import poll
from shopkit.clock import system_clock
from shopkit.db import Database

from .test_order_saga import reserved


class SilentProvider:
    """Accepts connections, reads requests, never answers: every payment call hangs."""

    def __init__(self) -> None:
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.readuntil(b"\r\n\r\n"):
            self.requests += 1
        await reader.read()  # until the client gives up

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()


async def put_in_paying(db: Database, settings: Settings) -> str:
    user = str(uuid.uuid4())
    now = system_clock()
    async with db.transaction() as conn:
        placed = await service.place_order(
            conn, settings=settings, user_id=user, items=[("p1", 2)], coupon_id=None, now=now
        )
    oid = str(placed.id)
    debited = WalletDebited(
        order_id=oid,
        operation_id=f"{oid}:place:debit",
        user_id=user,
        amount=20_000,
        balance=0,
        transaction_id=str(uuid.uuid4()),
    )
    for reply in (reserved(oid), debited):
        async with db.transaction() as conn:
            await service.apply_events(
                conn, settings=settings, events=[(oid, reply, None)], now=now
            )
    return oid


@pytest.mark.timeout(60)
async def test_worker_at_capacity_keeps_the_event_loop_free(
    settings: Settings, own_db: Database
) -> None:
    """With every slot busy on a hanging provider, the worker waits instead of spinning.

    The worker once looped without awaiting when no slot was free, which froze the whole order
    process (no HTTP answers, no consumers) until the provider answered; here that would hang
    this test until the timeout fails it."""
    provider = SilentProvider()
    async with provider as url:
        conf = settings.model_copy(
            update={"payment_url": url, "payment_concurrency": 2, "payment_timeout_seconds": 30}
        )
        for _ in range(3):
            await put_in_paying(own_db, conf)
        app = SimpleNamespace(
            state=SimpleNamespace(
                settings=conf, db=own_db, clock=system_clock, provider_work=asyncio.Event()
            )
        )
        worker = asyncio.create_task(payment_worker(app))  # type: ignore[arg-type]
        try:
            # poll() itself needs the event loop: it only returns if the worker lets it run.
            await poll(lambda: asyncio.sleep(0, provider.requests), until=lambda n: n >= 2)
            assert provider.requests == 2  # and never more calls than slots
        finally:
            worker.cancel()
            with pytest.raises(asyncio.CancelledError):
                await worker


async def listening(db: Database, channel: str) -> int:
    async with db.autocommit() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE 'LISTEN%' || $1 || '%'",
                channel,
            )
        )


@pytest.mark.timeout(60)
async def test_a_saga_entering_a_provider_step_wakes_the_worker_through_its_channel(
    settings: Settings, own_db: Database
) -> None:
    """The worker's next scan is far away: only its own NOTIFY can bring the payment call on
    time (no `?wait` request is involved)."""
    provider = SilentProvider()
    async with provider as url:
        conf = settings.model_copy(
            update={"database_url": own_db.url, "payment_url": url, "scan_interval_seconds": 60}
        )
        app = SimpleNamespace(
            state=SimpleNamespace(
                settings=conf,
                db=own_db,
                clock=system_clock,
                provider_work=asyncio.Event(),
                waiters=Waiters(100),
            )
        )
        jobs = [asyncio.create_task(job(app)) for job in (listen, payment_worker)]  # type: ignore[arg-type]
        try:
            await poll(lambda: listening(own_db, PROVIDER_WORK_CHANNEL), until=lambda n: n == 1)
            await poll(
                lambda: asyncio.sleep(0, app.state.provider_work.is_set()), until=lambda s: not s
            )
            await put_in_paying(own_db, conf)
            await poll(
                lambda: asyncio.sleep(0, provider.requests), until=lambda n: n == 1, timeout=10
            )
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)


async def approve_all(outcomes: ProviderOutcomes, orders: list[str], *extra: str) -> list[object]:
    return await asyncio.gather(
        *[outcomes.record(oid, PaymentApproved(payment_id=f"pay-{oid}")) for oid in orders],
        *[outcomes.record(oid, PaymentApproved(payment_id="pay-bad")) for oid in extra],
        return_exceptions=True,
    )


async def test_results_are_applied_together_and_a_bad_one_holds_no_one_back(
    settings: Settings, own_db: Database
) -> None:
    """Provider results arriving together share a transaction; one that cannot be written (an
    order id PostgreSQL cannot hold) fails alone, and every other order moves on, once."""
    outcomes = ProviderOutcomes(own_db, settings, system_clock)
    together = [await put_in_paying(own_db, settings) for _ in range(8)]
    assert await approve_all(outcomes, together) == [None] * len(together)
    with_bad = [await put_in_paying(own_db, settings) for _ in range(4)]
    answers = await approve_all(outcomes, with_bad, "bad\x00id")
    assert answers[:-1] == [None] * len(with_bad)
    assert isinstance(answers[-1], Exception)

    orders = together + with_bad
    async with own_db.autocommit() as conn:
        approved = await conn.fetch(
            "SELECT order_id, count(*) FROM order_history WHERE event = 'PaymentApproved'"
            " AND order_id = ANY($1::text[]) GROUP BY order_id",
            orders,
        )
        assert {r["order_id"]: r["count"] for r in approved} == dict.fromkeys(orders, 1)
        steps = await conn.fetch(
            "SELECT DISTINCT step FROM orders WHERE id = ANY($1::text[])", orders
        )
        assert "PAYING" not in {r["step"] for r in steps}
        # Rows written by one transaction share its xmin.
        writers = await conn.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM orders WHERE id = ANY($1::text[])", together
        )
        assert writers <= 2
