"""The outbox backlog an operator reads (`GET /ops/outbox`), against real PostgreSQL and Kafka:
rows another relay holds back are counted with the oldest one's age, and the count falls to
zero once this service's relay may send them."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from contracts.wallet import BalanceCharged
from shopdev.testing import Infra, kit_database, poll, serve, session_keys
from shopkit.app import create_app
from shopkit.db import Database, asyncpg_dsn
from shopkit.outbox import RELAY_LOCK_ID, publish
from shopkit.settings import ServiceSettings


@pytest.fixture(scope="module")
async def db(infra: Infra) -> AsyncIterator[Database]:
    async with kit_database(infra, "outbox_ops") as database:
        yield database


@pytest.fixture(scope="module")
def settings(db: Database, infra: Infra, kafka_namespace: str) -> ServiceSettings:
    return ServiceSettings(
        service_name="kit-outbox-ops",
        database_url=db.url,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        log_json=False,
        jwt_public_keys=session_keys().public_keys,
    )


async def test_the_backlog_counts_unsent_messages_and_the_oldest_ones_age(
    db: Database, settings: ServiceSettings
) -> None:
    admin = session_keys().headers("admin-1", "admin")
    shopper = session_keys().headers(str(uuid.uuid4()))
    # Another replica's relay holds the lock: this service's relay waits, rows stay unsent.
    other_relay = await asyncpg.connect(asyncpg_dsn(db.url))
    try:
        assert await other_relay.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_ID)
        async with serve(create_app(settings, title="kit outbox", routers=[])) as client:

            async def backlog() -> dict[str, Any]:
                answer = await client.get("/ops/outbox", headers=admin)
                assert answer.status_code == 200, answer.text
                return dict(answer.json())

            assert await backlog() == {"pending": 0, "oldest_age_s": None}
            for headers, status in (({}, 401), (shopper, 403)):
                assert (await client.get("/ops/outbox", headers=headers)).status_code == status

            messages = [
                BalanceCharged(user_id=f"u{n}", amount=1, balance=1, transaction_id=f"t{n}")
                for n in range(3)
            ]
            async with db.transaction() as tx:
                await publish(tx, *messages)
                # The first row waited a minute already.
                await tx.execute(
                    "UPDATE outbox SET created_at = now() - interval '60 seconds'"
                    " WHERE id = (SELECT min(id) FROM outbox)"
                )
            found = await backlog()
            assert found["pending"] == 3
            assert 60 <= found["oldest_age_s"] < 120

            # The other relay goes away: this one takes over and sends everything.
            await other_relay.close()
            await poll(
                backlog,
                until=lambda b: b == {"pending": 0, "oldest_age_s": None},
                timeout=30,
                message="the outbox drained",
            )
    finally:
        if not other_relay.is_closed():
            await other_relay.close()
