"""Faults against real PostgreSQL and Kafka: an outage is waited out, never dead-lettered; a
poison message still is; HTTP answers 503 while the database is away; the relay outlives a
broken producer."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from fastapi import APIRouter

from contracts import Envelope
from contracts.wallet import BalanceCharged
from shopdev.testing import (
    Infra,
    KafkaProbe,
    database_refusing,
    kit_database,
    poll,
    serve,
    session_keys,
)
from shopkit.app import Db, create_app
from shopkit.db import Database, Transaction, asyncpg_dsn
from shopkit.messaging import Consumer, each
from shopkit.outbox import RELAY_LOCK_ID, envelope, publish
from shopkit.relay import OutboxRelay
from shopkit.settings import ServiceSettings


@pytest.fixture(scope="module")
async def db(infra: Infra) -> AsyncIterator[Database]:
    async with kit_database(
        infra,
        "kitfaults",
        "CREATE TABLE effects (id bigserial PRIMARY KEY, message_id uuid, user_id text,"
        " seq int, applied_at timestamptz DEFAULT clock_timestamp())",
    ) as database:
        yield database


@pytest.fixture(scope="module")
def settings(db: Database, infra: Infra, kafka_namespace: str) -> ServiceSettings:
    return ServiceSettings(
        service_name="kit-faults",
        database_url=db.url,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        log_json=False,
        jwt_public_keys=session_keys().public_keys,
    )


async def query(db: Database, sql: str, *args: Any) -> list[asyncpg.Record]:
    """On a connection of its own: the pools under test are left alone."""
    conn = await asyncpg.connect(asyncpg_dsn(db.url))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def applied(db: Database, users: list[str]) -> list[asyncpg.Record]:
    return await query(
        db,
        "SELECT message_id, user_id, seq, applied_at FROM effects WHERE user_id = ANY($1)"
        " ORDER BY id",
        users,
    )


async def dead_letters(db: Database, consumer: str) -> list[asyncpg.Record]:
    return await query(db, "SELECT * FROM dead_letters WHERE consumer = $1", consumer)


@asynccontextmanager
async def consuming(
    consumer: Consumer, db: Database, settings: ServiceSettings
) -> AsyncIterator[None]:
    subscription = consumer.subscribe(db, settings)
    await subscription.start()
    try:
        yield
    finally:
        await subscription.stop()


def charged(user_id: str, seq: int) -> BalanceCharged:
    return BalanceCharged(user_id=user_id, amount=1, balance=seq, transaction_id=str(uuid.uuid4()))


def effects_consumer(name: str, kind: str) -> Consumer:
    """A consumer that records one effects row per message, slowly enough (20 ms a poll) that
    the outage finds transactions in flight."""
    consumer = Consumer(name)
    if kind == "batch":

        @consumer.handles(BalanceCharged)
        async def record_all(tx: Transaction, items: list[tuple[Any, Envelope]]) -> None:
            await asyncio.sleep(0.02)
            await tx.executemany(
                "INSERT INTO effects (message_id, user_id, seq) VALUES ($1, $2, $3)",
                [(env.message_id, m.user_id, m.balance) for m, env in items],
            )

    else:

        @consumer.handles(BalanceCharged)
        @each
        async def record(tx: Transaction, message: BalanceCharged, env: Envelope) -> None:
            await asyncio.sleep(0.02)
            await tx.execute(
                "INSERT INTO effects (message_id, user_id, seq) VALUES ($1, $2, $3)",
                env.message_id,
                message.user_id,
                message.balance,
            )

    return consumer


@pytest.mark.parametrize("kind", ["batch", "each"])
async def test_a_database_outage_mid_poll_dead_letters_nothing_and_applies_each_message_once(
    db: Database,
    settings: ServiceSettings,
    kafka: KafkaProbe,
    infra: Infra,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="shopkit.faults")
    name = f"kit-outage-{kind}"
    users = [str(uuid.uuid4()) for _ in range(4)]
    consumer = effects_consumer(name, kind)
    # Small polls: many transactions, so the outage cuts some of them short. A poll waits in
    # place for a second, then is handed back (sought back and polled again), and so on.
    fast = settings.model_copy(
        update={
            "consumer_batch_size": 5,
            "consumer_max_attempts": 2,
            "consumer_repoll_after_s": 1.0,
            "consumer_retry_max_s": 0.4,
        }
    )
    sent: list[Envelope] = []

    async def publish(seqs: range) -> None:
        sent.extend(await kafka.publish_many([charged(u, s) for s in seqs for u in users]))

    async with consuming(consumer, db, fast):
        await publish(range(1, 11))
        await poll(lambda: applied(db, users), until=bool, message="the first messages applied")
        async with database_refusing(infra.pg_admin_url, db.url):
            await publish(range(11, 21))  # they wait in Kafka while the database is away
            await asyncio.sleep(2.5)
        (back,) = await query(db, "SELECT clock_timestamp() AS at")
        await publish(range(21, 31))
        rows = await poll(
            lambda: applied(db, users),
            until=lambda rows: len(rows) >= len(sent),
            timeout=30,
            message="every message applied",
        )
        await asyncio.sleep(0.5)  # anything applied twice would show up now
        rows = await applied(db, users)

    assert sorted(str(r["message_id"]) for r in rows) == sorted(str(e.message_id) for e in sent)
    for user in users:  # each key's messages in order
        assert [r["seq"] for r in rows if r["user_id"] == user] == list(range(1, 31))
    during = {e.message_id for e in sent[len(users) * 10 : len(users) * 20]}
    assert all(r["applied_at"] >= back["at"] for r in rows if r["message_id"] in during)
    assert await dead_letters(db, name) == []
    assert await query(db, "SELECT id FROM outbox WHERE topic LIKE '%.dlt'") == []
    waits = [r.message for r in caplog.records if r.name == "shopkit.faults"]
    assert "dependency unavailable; waiting" in waits
    assert "dependency still unavailable; handing the work back to be tried again" in waits


async def test_a_poison_message_is_still_dead_lettered_after_bounded_attempts(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    user = str(uuid.uuid4())
    poison, good = await kafka.publish_many([charged(user, 1), charged(user, 2)])
    consumer = Consumer("kit-poison-attempts")
    tries: list[uuid.UUID] = []

    @consumer.handles(BalanceCharged)
    @each
    async def fragile(tx: Transaction, message: BalanceCharged, env: Envelope) -> None:
        tries.append(env.message_id)
        if env.message_id == poison.message_id:
            raise ValueError("cannot handle this one")
        await tx.execute(
            "INSERT INTO effects (message_id, user_id, seq) VALUES ($1, $2, $3)",
            env.message_id,
            message.user_id,
            message.balance,
        )

    fast = settings.model_copy(update={"consumer_max_attempts": 3})
    async with consuming(consumer, db, fast):
        rows = await poll(lambda: applied(db, [user]), until=bool, message="the good one applied")
        (letter,) = await poll(
            lambda: dead_letters(db, "kit-poison-attempts"), until=bool, message="dead letter"
        )

    assert [r["message_id"] for r in rows] == [good.message_id]
    # Once in the poll's transaction, then three attempts on its own.
    assert tries.count(poison.message_id) == 1 + 3
    assert (letter["message_id"], letter["attempts"]) == (poison.message_id, 3)
    assert "cannot handle this one" in letter["error"]
    assert letter["partition"] is not None and letter["offset"] is not None
    assert letter["topic"] == "wallet.events"


async def test_a_message_with_a_field_its_reader_does_not_know_is_applied(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    """A newer producer added a field: the consumer reads what it knows (producers stay strict:
    the contract refuses the field when a message is made)."""
    user = str(uuid.uuid4())
    original = envelope(charged(user, 1))
    newer = original.model_copy(update={"payload": {**original.payload, "loyalty_points": 7}})
    with pytest.raises(ValueError, match="loyalty_points"):
        BalanceCharged(**newer.payload)
    consumer = effects_consumer("kit-newer-producer", "each")

    async with consuming(consumer, db, settings):
        await kafka.publish_envelopes([("wallet.events", newer)])
        rows = await poll(lambda: applied(db, [user]), until=bool, message="applied")

    assert [r["message_id"] for r in rows] == [original.message_id]
    assert await dead_letters(db, "kit-newer-producer") == []


class FirstProducerBreaksForGood(OutboxRelay):
    """The first producer sends two records, then fails every send as an idempotent producer
    does after OutOfOrderSequenceNumber (aio-libs/aiokafka#1017): only a new one works."""

    def new_producer(self) -> Any:
        producer = super().new_producer()
        if self.producers_started == 0:
            send: Callable[..., Awaitable[Any]] = producer.send
            sends = 0

            async def broken_after_two(*args: Any, **kwargs: Any) -> Any:
                nonlocal sends
                sends += 1
                if sends <= 2:
                    return await send(*args, **kwargs)
                failed = asyncio.get_running_loop().create_future()
                failed.set_exception(OutOfOrderSequenceNumber())
                return failed

            producer.send = broken_after_two
        return producer


async def test_the_relay_starts_a_new_producer_after_a_fatal_send_error_and_sends_in_order(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    user = str(uuid.uuid4())
    queued = []
    for seq in range(1, 11):
        async with db.transaction() as tx:
            queued.extend(await publish(tx, charged(user, seq)))
    relay = FirstProducerBreaksForGood(settings)
    await relay.start()
    try:

        async def on_topic() -> list[str]:
            events = await kafka.read_all("wallet.events", idle_ms=300)
            return [e["message_id"] for e in events if e["key"] == user]

        found = await poll(
            on_topic,
            until=lambda ids: set(ids) >= {str(e.message_id) for e in queued},
            timeout=30,
            message="every queued message on the topic",
        )
        await poll(
            lambda: query(db, "SELECT id FROM outbox WHERE key = $1", user),
            until=lambda rows: not rows,
            message="the outbox drained",
        )
    finally:
        await relay.stop()
    assert relay.producers_started >= 2
    # Sent again from the first unacknowledged row: in commit order, some twice.
    first_seen = list(dict.fromkeys(found))
    assert first_seen == [str(e.message_id) for e in queued]


def probe_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/things/autocommit")
    async def in_autocommit(db: Db) -> dict[str, int]:
        async with db.autocommit() as conn:
            return {"n": await conn.fetchval("SELECT count(*) FROM effects")}

    @router.get("/things/transaction")
    async def in_a_transaction(db: Db) -> dict[str, int]:
        async with db.transaction() as tx:
            return {"n": await tx.fetchval("SELECT count(*) FROM effects")}

    return router


async def answers(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    return {
        path: await client.get(path)
        for path in ("/things/autocommit", "/things/transaction", "/ready")
    }


async def test_http_answers_503_with_retry_after_while_the_database_refuses_and_2xx_soon_after(
    settings: ServiceSettings, db: Database, infra: Infra
) -> None:
    app = create_app(
        settings.model_copy(update={"service_name": "kit-http"}),
        title="faults",
        routers=[probe_routes()],
    )
    async with serve(app) as client:
        assert {p: r.status_code for p, r in (await answers(client)).items()} == {
            "/things/autocommit": 200,
            "/things/transaction": 200,
            "/ready": 200,
        }
        seen: list[tuple[str, int]] = []
        async with database_refusing(infra.pg_admin_url, db.url):
            for _ in range(5):
                for path, response in (await answers(client)).items():
                    seen.append((path, response.status_code))
                    assert response.status_code == 503, (path, response.text)
                    assert response.headers["content-type"] == "application/problem+json"
                    assert int(response.headers["retry-after"]) > 0
                    code = "NOT_READY" if path == "/ready" else "SERVICE_UNAVAILABLE"
                    assert response.json()["code"] == code
                await asyncio.sleep(0.3)

        async def statuses() -> set[int]:
            return {r.status_code for r in (await answers(client)).values()}

        await poll(statuses, until=lambda s: s == {200}, timeout=5, message="2xx again")


async def test_ready_is_false_while_the_outbox_falls_behind(
    settings: ServiceSettings, db: Database
) -> None:
    """Another replica holds the relay's lock but sends nothing: the oldest row ages."""
    stuck = await asyncpg.connect(asyncpg_dsn(db.url))
    try:
        assert await stuck.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_ID)
        async with db.transaction() as tx:
            (queued,) = await publish(tx, charged(str(uuid.uuid4()), 1))
        await stuck.execute(
            "UPDATE outbox SET created_at = now() - interval '5 minutes' WHERE message_id = $1",
            queued.message_id,
        )
        app = create_app(
            settings.model_copy(update={"service_name": "kit-ready", "ready_max_outbox_age_s": 60}),
            title="faults",
            routers=[],
        )
        async with serve(app) as client:
            behind = await client.get("/ready")
            assert behind.status_code == 503
            assert "outbox" in behind.json()["detail"]
            await stuck.close()  # the stuck leader goes away: this app's relay takes over
            await poll(
                lambda: client.get("/ready"),
                until=lambda r: r.status_code == 200,
                timeout=10,
                message="ready once the relay sent the old row",
            )
    finally:
        if not stuck.is_closed():
            await stuck.close()


async def test_the_relay_reconnects_after_its_database_was_away_and_sends_what_came_since(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe, infra: Infra
) -> None:
    user = str(uuid.uuid4())
    relay = OutboxRelay(settings)
    await relay.start()
    try:
        await poll(lambda: asyncio.sleep(0, relay.is_leader), message="the relay leads")
        async with database_refusing(infra.pg_admin_url, db.url):
            await poll(lambda: asyncio.sleep(0, not relay.is_leader), message="it lost its lock")
            await asyncio.sleep(1.0)
        async with db.transaction() as tx:
            (queued,) = await publish(tx, charged(user, 1))
        await kafka.wait_for(
            "wallet.events", lambda e: e["message_id"] == str(queued.message_id), timeout=10
        )
    finally:
        await relay.stop()


async def test_a_consumer_waiting_out_an_outage_stops_at_once(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    """Shutting a service down does not wait for the dependency to come back."""
    consumer = Consumer("kit-stops-while-waiting")
    waiting = asyncio.Event()

    @consumer.handles(BalanceCharged)
    @each
    async def away(tx: Transaction, message: BalanceCharged, env: Envelope) -> None:
        waiting.set()
        raise ConnectionRefusedError(111, "Connect call failed")

    subscription = consumer.subscribe(db, settings)
    await subscription.start()
    try:
        await kafka.publish(charged(str(uuid.uuid4()), 1))
        await asyncio.wait_for(waiting.wait(), timeout=15)
    finally:
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(subscription.stop(), timeout=10)
    assert asyncio.get_running_loop().time() - started < 5
    assert await dead_letters(db, "kit-stops-while-waiting") == []
