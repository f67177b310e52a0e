"""Dead letters an operator can use, against real PostgreSQL and Kafka: listed with their error
and position, redriven once the cause is fixed, applied exactly once, gone from the list."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI, HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts import Envelope
from contracts.wallet import BalanceCharged
from shopdev.testing import (
    Infra,
    KafkaProbe,
    kit_database,
    poll,
    serve,
    session_keys,
)
from shopkit import dlq
from shopkit.app import create_app
from shopkit.db import Database, Transaction
from shopkit.dead_letters import dead_letter
from shopkit.messaging import Consumer, each
from shopkit.outbox import envelope
from shopkit.settings import ServiceSettings

TOPIC = "wallet.events"


@pytest.fixture(scope="module")
async def db(infra: Infra) -> AsyncIterator[Database]:
    async with kit_database(
        infra, "dlq", "CREATE TABLE effects (consumer text, message_id uuid, user_id text)"
    ) as database:
        yield database


@pytest.fixture(scope="module")
def settings(db: Database, infra: Infra, kafka_namespace: str) -> ServiceSettings:
    return ServiceSettings(
        service_name="kit-dlq",
        database_url=db.url,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        log_json=False,
        consumer_max_attempts=2,
        jwt_public_keys=session_keys().public_keys,
    )


@dataclass
class Shop:
    """A service with two consumer groups on one topic: `fragile` fails the users in
    `broken` until they are repaired; `bystander` applies everything (another group that
    must not apply a redriven message again)."""

    app: FastAPI
    client: httpx.AsyncClient
    db: Database
    broken: set[str] = field(default_factory=set)

    async def effects(self, consumer: str, message_id: uuid.UUID) -> int:
        async with self.db.autocommit() as conn:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM effects WHERE consumer = $1 AND message_id = $2",
                    consumer,
                    message_id,
                )
            )

    async def letters(self, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"limit": 100, **params} | ({"cursor": cursor} if cursor else {})
            page = await self.client.get("/ops/dead-letters", params=query, headers=headers)
            assert page.status_code == 200, page.text
            found += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return found

    async def letter_of(self, headers: dict[str, str], envelope: Envelope) -> dict[str, Any]:
        """Wait until `envelope` is listed as a dead letter; its letter."""
        letters = await poll(
            lambda: self.letters(headers),
            until=lambda found: any(_of(letter, envelope) for letter in found),
            timeout=30,
            message="the poison message listed",
        )
        return next(letter for letter in letters if _of(letter, envelope))


def _of(letter: dict[str, Any], envelope: Envelope) -> bool:
    return bool(letter["payload"].get("message_id") == str(envelope.message_id))


@asynccontextmanager
async def running_shop(db: Database, settings: ServiceSettings) -> AsyncIterator[Shop]:
    broken: set[str] = set()
    fragile, bystander = Consumer("kit-dlq-fragile"), Consumer("kit-dlq-bystander")

    async def record(tx: Transaction, name: str, message: BalanceCharged, env: Envelope) -> None:
        await tx.execute(
            "INSERT INTO effects (consumer, message_id, user_id) VALUES ($1, $2, $3)",
            name,
            env.message_id,
            message.user_id,
        )

    @fragile.handles(BalanceCharged)
    @each
    async def apply_fragile(tx: Transaction, message: BalanceCharged, env: Envelope) -> None:
        if message.user_id in broken:
            raise ValueError(f"no wallet for {message.user_id}")
        await record(tx, fragile.name, message, env)

    @bystander.handles(BalanceCharged)
    @each
    async def apply_bystander(tx: Transaction, message: BalanceCharged, env: Envelope) -> None:
        await record(tx, bystander.name, message, env)

    app: FastAPI = create_app(settings, title="kit dlq", routers=[], consumers=[fragile, bystander])
    async with serve(app) as client:
        yield Shop(app=app, client=client, db=db, broken=broken)


ADMIN = "admin-7"


@pytest.fixture(scope="module")
def admin(settings: ServiceSettings) -> dict[str, str]:
    return session_keys().headers(ADMIN, "admin")


@pytest.fixture(scope="module")
def shopper(settings: ServiceSettings) -> dict[str, str]:
    return session_keys().headers(str(uuid.uuid4()))


def charged(user_id: str) -> BalanceCharged:
    return BalanceCharged(user_id=user_id, amount=1, balance=1, transaction_id=str(uuid.uuid4()))


async def position_of(kafka: KafkaProbe, envelope: Envelope) -> tuple[int, int]:
    """Where the first copy of `envelope` is on its topic: (partition, offset)."""
    consumer = AIOKafkaConsumer(
        f"{kafka.namespace}{TOPIC}",
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            assert batch, f"{envelope.message_id} not on {TOPIC}"
            for records in batch.values():
                for record in records:
                    if orjson.loads(record.value)["message_id"] == str(envelope.message_id):
                        return record.partition, record.offset
    finally:
        await consumer.stop()


async def test_a_poison_message_is_listed_fixed_redriven_and_applied_once(
    db: Database,
    settings: ServiceSettings,
    kafka: KafkaProbe,
    admin: dict[str, str],
    shopper: dict[str, str],
) -> None:
    user_id = str(uuid.uuid4())
    async with running_shop(db, settings) as shop:
        shop.broken.add(user_id)
        poison = await kafka.publish(charged(user_id))
        letter = await shop.letter_of(admin, poison)

        # Listed with its error, attempts and original position.
        assert letter["topic"] == TOPIC and letter["key"] == user_id
        assert letter["type"] == "BalanceCharged"
        assert f"no wallet for {user_id}" in letter["error"]
        assert letter["attempts"] == settings.consumer_max_attempts
        assert (letter["partition"], letter["offset"]) == await position_of(kafka, poison)
        assert await shop.effects("kit-dlq-fragile", poison.message_id) == 0
        assert await shop.effects("kit-dlq-bystander", poison.message_id) == 1
        shown = await shop.client.get(f"/ops/dead-letters/{letter['id']}", headers=admin)
        assert shown.status_code == 200
        assert shown.json()["status"] == "DEAD"
        assert shown.json()["consumer"] == "kit-dlq-fragile"

        # Admin only.
        for headers, status in (({}, 401), (shopper, 403)):
            assert (await shop.client.get("/ops/dead-letters", headers=headers)).status_code == (
                status
            )
            redrive = f"/ops/dead-letters/{letter['id']}/redrive"
            assert (await shop.client.post(redrive, headers=headers)).status_code == status
        for missing in (str(uuid.uuid4()), "not-an-id"):
            gone = await shop.client.get(f"/ops/dead-letters/{missing}", headers=admin)
            assert (gone.status_code, gone.json()["code"]) == (404, "DEAD_LETTER_NOT_FOUND")

        # The data is repaired; the operator redrives it.
        shop.broken.discard(user_id)
        redriven = await shop.client.post(
            f"/ops/dead-letters/{letter['id']}/redrive", headers=admin
        )
        assert redriven.status_code == 202, redriven.text
        assert redriven.json()["status"] == "REDRIVING"
        assert redriven.json()["redriven_by"] == ADMIN

        await poll(
            lambda: shop.effects("kit-dlq-fragile", poison.message_id),
            until=lambda n: n == 1,
            message="the redriven message applied",
        )
        await poll(
            lambda: shop.letters(admin),
            until=lambda found: not any(_of(one, poison) for one in found),
            message="the letter gone from the list",
        )
        shown = await shop.client.get(f"/ops/dead-letters/{letter['id']}", headers=admin)
        assert shown.json()["status"] == "REDRIVEN" and shown.json()["redriven_by"] == ADMIN

        # A second redrive does nothing.
        again = await shop.client.post(f"/ops/dead-letters/{letter['id']}/redrive", headers=admin)
        assert (again.status_code, again.json()["code"]) == (409, "DEAD_LETTER_NOT_DEAD")

        # Applied once by its consumer, and not again by the other group that had it already:
        # a message published after the redrive, on the same key (so the same partition), is
        # applied by both only after they have read the redriven copy.
        marker = await kafka.publish(charged(user_id))
        for consumer in ("kit-dlq-fragile", "kit-dlq-bystander"):
            await poll(
                lambda c=consumer: shop.effects(c, marker.message_id),  # type: ignore[misc]
                until=lambda n: n == 1,
            )
        assert await shop.effects("kit-dlq-fragile", poison.message_id) == 1
        assert await shop.effects("kit-dlq-bystander", poison.message_id) == 1
    async with db.autocommit() as conn:
        rows = await conn.fetch(
            "SELECT status FROM dead_letters WHERE message_id = $1", poison.message_id
        )
        outcome = await conn.fetchval(
            "SELECT outcome FROM inbox WHERE consumer = 'kit-dlq-fragile' AND message_id = $1",
            poison.message_id,
        )
    assert [row["status"] for row in rows] == ["REDRIVEN"]
    assert outcome == "redriven"


async def test_a_redriven_message_that_fails_again_is_the_same_letter_dead_again(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe, admin: dict[str, str]
) -> None:
    user_id = str(uuid.uuid4())
    async with running_shop(db, settings) as shop:
        shop.broken.add(user_id)
        poison = await kafka.publish(charged(user_id))
        letter = await shop.letter_of(admin, poison)
        redriven = await shop.client.post(
            f"/ops/dead-letters/{letter['id']}/redrive", headers=admin
        )
        assert redriven.status_code == 202

        async def attempts() -> int:
            shown = await shop.client.get(f"/ops/dead-letters/{letter['id']}", headers=admin)
            body = shown.json()
            return int(body["attempts"]) if body["status"] == "DEAD" else 0

        await poll(attempts, until=lambda n: n == 2 * settings.consumer_max_attempts)
        listed = [one for one in await shop.letters(admin) if _of(one, poison)]
        assert [one["id"] for one in listed] == [letter["id"]]  # one letter, not two
        assert await shop.effects("kit-dlq-fragile", poison.message_id) == 0

        # Fixed now: the same letter is redriven and applied once.
        shop.broken.discard(user_id)
        again = await shop.client.post(f"/ops/dead-letters/{letter['id']}/redrive", headers=admin)
        assert again.status_code == 202
        await poll(
            lambda: shop.effects("kit-dlq-fragile", poison.message_id), until=lambda n: n == 1
        )
        await poll(
            lambda: shop.letters(admin),
            until=lambda found: not any(_of(one, poison) for one in found),
        )


async def test_redrive_all_sends_back_every_dead_letter_of_the_service(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe, admin: dict[str, str]
) -> None:
    users = [str(uuid.uuid4()) for _ in range(3)]
    async with running_shop(db, settings) as shop:
        shop.broken.update(users)
        poisons = [await kafka.publish(charged(user)) for user in users]
        for poison in poisons:
            await shop.letter_of(admin, poison)
        shop.broken.clear()

        answer = await shop.client.post("/ops/dead-letters/redrive", headers=admin)
        assert answer.status_code == 202
        assert answer.json()["redriven"] >= len(poisons)
        for poison in poisons:
            await poll(
                lambda p=poison: shop.effects("kit-dlq-fragile", p.message_id),  # type: ignore[misc]
                until=lambda n: n == 1,
            )
        await poll(
            lambda: shop.letters(admin),
            until=lambda found: not any(_of(one, p) for one in found for p in poisons),
        )
        for poison in poisons:
            assert await shop.effects("kit-dlq-fragile", poison.message_id) == 1


def gateway(service_app: FastAPI, settings: ServiceSettings, password: str) -> ASGIApp:
    """The gateway's part the CLI relies on: the wallet's login, and /api/ops/order/... passed
    to the service as /ops/... (as nginx does)."""
    wallet = FastAPI()

    @wallet.post("/api/auth/login")
    async def login(body: dict[str, str]) -> dict[str, str]:
        if body != {"email": "admin@shop.local", "password": password}:
            raise HTTPException(401)
        return {"access_token": session_keys().signer().issue(user_id=ADMIN, role="admin")}

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        prefix = "/api/ops/order/"
        if scope["type"] == "http" and scope["path"].startswith(prefix):
            path = "/ops/" + scope["path"].removeprefix(prefix)
            await service_app({**scope, "path": path, "raw_path": path.encode()}, receive, send)
        else:
            await wallet(scope, receive, send)

    return route


def json_of(out: str) -> Any:
    """The JSON the CLI printed, among the service's log lines."""
    start = out.index("{\n")
    return orjson.loads(out[start : out.index("\n}", start) + 2])


async def test_the_cli_lists_shows_and_redrives_over_the_admin_api(
    db: Database,
    settings: ServiceSettings,
    kafka: KafkaProbe,
    admin: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user_id = str(uuid.uuid4())
    monkeypatch.setenv("SHOP_ADMIN_PASSWORD", "cli-password")
    async with running_shop(db, settings) as shop:
        shop.broken.add(user_id)
        poison = await kafka.publish(charged(user_id))
        letter = await shop.letter_of(admin, poison)
        transport = httpx.ASGITransport(app=gateway(shop.app, settings, "cli-password"))

        async def cli(*argv: str) -> tuple[int, str]:
            status = await dlq.run([*argv, "--url", "http://gateway"], transport=transport)
            out, err = capsys.readouterr()
            return status, out if status == 0 else err

        status, table = await cli("list", "--service", "order")
        assert status == 0, table
        lines = table.splitlines()  # the service's own log lines go to stdout as well
        start = next(i for i, line in enumerate(lines) if line.startswith("service"))
        header, *rows = lines[start:]
        assert header.split()[:4] == ["service", "id", "dead_at", "topic"]
        (row,) = [line for line in rows if letter["id"] in line]
        assert row.split()[0] == "order" and TOPIC in row and "BalanceCharged" in row

        status, shown = await cli("show", letter["id"], "--service", "order")
        assert status == 0
        assert json_of(shown)["status"] == "DEAD"
        assert json_of(shown)["payload"]["message_id"] == str(poison.message_id)

        shop.broken.discard(user_id)
        status, redriven = await cli("redrive", letter["id"], "--service", "order")
        assert status == 0 and json_of(redriven)["status"] == "REDRIVING"
        await poll(
            lambda: shop.effects("kit-dlq-fragile", poison.message_id), until=lambda n: n == 1
        )
        status, refused = await cli("redrive", letter["id"], "--service", "order")
        assert status == 1 and "DEAD_LETTER_NOT_DEAD" in refused  # a second redrive: nothing

        status, answer = await cli("redrive", "--all", "--service", "order")
        assert status == 0 and json_of(answer)["redriven"] == 0

        monkeypatch.setenv("SHOP_ADMIN_PASSWORD", "wrong")
        status, refused = await cli("list", "--service", "order")
        assert status == 1 and "401" in refused


async def test_letters_that_cannot_be_redriven_say_why_and_pages_follow_the_cursor(
    db: Database, settings: ServiceSettings, admin: dict[str, str]
) -> None:
    consumer = f"kit-dlq-odd-{uuid.uuid4().hex[:6]}"
    # A record that is no envelope at all, delivered twice: one letter, by its position.
    for _ in range(2):
        await dead_letter(
            db,
            consumer=consumer,
            topic=TOPIC,
            envelope=None,
            body={"undecodable": "%%%"},
            error=ValueError("not an envelope"),
            partition=3,
            offset=41,
        )
    old = charged(str(uuid.uuid4()))
    stale = envelope(old).model_copy(
        update={"occurred_at": datetime.now(UTC) - timedelta(days=settings.inbox_retention_days)}
    )
    await dead_letter(
        db,
        consumer=consumer,
        topic=TOPIC,
        envelope=stale,
        body=stale.model_dump(mode="json"),
        error=ValueError("broken"),
    )
    app = create_app(settings, title="kit dlq", routers=[])
    async with serve(app) as client:
        pages, cursor = [], None
        while True:
            page = await client.get(
                "/ops/dead-letters",
                params={"limit": 1} | ({"cursor": cursor} if cursor else {}),
                headers=admin,
            )
            pages.append(page.json()["items"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert all(len(items) == 1 for items in pages)
        listed = [items[0] for items in pages]
        assert [one["dead_at"] for one in listed] == sorted(one["dead_at"] for one in listed)
        mine = [one for one in listed if one["topic"] == TOPIC and one["key"] in (None, stale.key)]
        unreadable = [one for one in mine if one["key"] is None and one["offset"] == 41]
        assert len(unreadable) == 1

        refused = await client.post(
            f"/ops/dead-letters/{unreadable[0]['id']}/redrive", headers=admin
        )
        assert (refused.status_code, refused.json()["code"]) == (409, "DEAD_LETTER_NOT_REDRIVABLE")
        (too_old,) = [one for one in mine if one["key"] == stale.key]
        refused = await client.post(f"/ops/dead-letters/{too_old['id']}/redrive", headers=admin)
        assert (refused.status_code, refused.json()["code"]) == (409, "DEAD_LETTER_TOO_OLD")

        everything = await client.post("/ops/dead-letters/redrive", headers=admin)
        skipped = {one["id"]: one["code"] for one in everything.json()["skipped"]}
        assert skipped[unreadable[0]["id"]] == "DEAD_LETTER_NOT_REDRIVABLE"
        assert skipped[too_old["id"]] == "DEAD_LETTER_TOO_OLD"
        still = await client.get(f"/ops/dead-letters/{too_old['id']}", headers=admin)
        assert still.json()["status"] == "DEAD"
