"""Pytest fixtures that give each test session real PostgreSQL and Kafka, isolated.

Infrastructure is chosen in this order: SHOP_TEST_PG_ADMIN_URL / SHOP_TEST_KAFKA_BOOTSTRAP from
the environment; testcontainers when a Docker engine answers; otherwise the repo's own scripts
under infra/local (which start Kafka and PostgreSQL on this machine, idempotently).
Every session gets its own Kafka namespace (topic and group prefix) and every service its own
fresh database, owned by its own login role, so runs never see each other's messages or rows.
"""

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from contracts import Envelope, Message

# dead_letters, idempotency, inbox and outbox each define one of kit_metadata's tables.
from shopkit import dead_letters, idempotency, inbox, local_secrets, outbox  # noqa: F401
from shopkit.auth import Role, TokenSigner
from shopkit.db import Database, kit_metadata
from shopkit.kafka_admin import ensure_topics
from shopkit.keys import generate_private_key, load_private_key, public_text
from shopkit.outbox import envelope as envelope_of
from shopkit.settings import ServiceSettings

T = TypeVar("T")
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass(frozen=True)
class SessionKeys:
    """Credentials made for one test session and written nowhere: the wallet's RSA key
    pair (base64url DER) and the shop's merchant key for the payment provider."""

    private_key: str
    public_key: str
    merchant_key: str

    @property
    def public_keys(self) -> list[str]:
        """What SHOP_JWT_PUBLIC_KEYS holds for the services under test."""
        return [self.public_key]

    def signer(self, *, ttl_seconds: int = 3600) -> TokenSigner:
        key = load_private_key(self.private_key, variable="test key")
        return TokenSigner(key, issuer="shop", audience="shop-api", ttl_seconds=ttl_seconds)

    def credentials(self, admin_password: str) -> dict[str, str]:
        """Everything `make dev` keeps in .local/secrets/shop.env, for a stack of its own
        (give each service its part with `local_secrets.service_env`)."""
        return {
            local_secrets.PRIVATE_KEY: self.private_key,
            local_secrets.PUBLIC_KEYS: json.dumps(self.public_keys),
            local_secrets.MERCHANT_KEY: self.merchant_key,
            local_secrets.ADMIN_PASSWORD: admin_password,
        }

    def headers(self, user_id: str, role: Role = "user") -> dict[str, str]:
        """Authorization headers with a token the wallet could have issued."""
        return {"Authorization": f"Bearer {self.signer().issue(user_id=user_id, role=role)}"}


@lru_cache(maxsize=1)
def session_keys() -> SessionKeys:
    """This test session's credentials, made on first use."""
    private = generate_private_key()
    public = public_text(load_private_key(private, variable="test key").public_key())
    return SessionKeys(private, public, secrets.token_urlsafe(32))


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "infra" / "local").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    raise RuntimeError("cannot find the repository root (infra/local)")


@dataclass(frozen=True)
class Infra:
    pg_admin_url: str  # postgresql://user:pass@host:port/postgres
    kafka_bootstrap: str

    def database_url(
        self, name: str, *, driver: str = "postgresql+asyncpg", role: tuple[str, str] | None = None
    ) -> str:
        """The URL of database `name`, as the admin or as `role` (user, password)."""
        base = self.pg_admin_url.rsplit("/", 1)[0].split("://", 1)[1]
        if role is not None:
            base = f"{role[0]}:{role[1]}@{base.rsplit('@', 1)[1]}"
        return f"{driver}://{base}/{name}"


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _local_infra() -> Infra:
    root = repo_root()
    for script in ("postgres.sh", "kafka.sh"):
        subprocess.run(["bash", str(root / "infra" / "local" / script), "start"], check=True)
    user = os.environ.get("SHOP_PG_USER", "postgres")
    password = os.environ.get("SHOP_PG_PASSWORD", "postgres")
    port = os.environ.get("SHOP_PG_PORT", "5432")
    kafka_port = os.environ.get("SHOP_KAFKA_PORT", "9092")
    return Infra(
        pg_admin_url=f"postgresql://{user}:{password}@127.0.0.1:{port}/postgres",
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
    )


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    pg, kafka = (
        os.environ.get("SHOP_TEST_PG_ADMIN_URL"),
        os.environ.get("SHOP_TEST_KAFKA_BOOTSTRAP"),
    )
    if pg and kafka:
        yield Infra(pg_admin_url=pg, kafka_bootstrap=kafka)
    elif _docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with (
            PostgresContainer("postgres:17", driver=None) as pgc,
            KafkaContainer("apache/kafka:3.9.1").with_kraft() as kc,
        ):
            yield Infra(
                pg_admin_url=pgc.get_connection_url(), kafka_bootstrap=kc.get_bootstrap_server()
            )
    else:
        yield _local_infra()


async def new_namespace(infra: Infra, prefix: str = "t") -> str:
    """A fresh topic and consumer-group prefix with every contract topic created."""
    namespace = f"{prefix}{uuid.uuid4().hex[:8]}."
    _NAMESPACES.append((infra.kafka_bootstrap, namespace))
    await ensure_topics(infra.kafka_bootstrap, namespace)
    return namespace


async def _delete_namespaces() -> None:
    for bootstrap, namespace in _NAMESPACES:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
        try:
            await admin.start()
            mine = [t for t in await admin.list_topics() if t.startswith(namespace)]
            if mine:
                await admin.delete_topics(mine)
        except Exception as exc:  # cleanup must never fail a green run
            print(f"[shopdev.testing] could not delete topics of {namespace}: {exc!r}")
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def kafka_namespace(infra: Infra) -> str:
    """The session's namespace. Tests that play another service (sending its replies) should
    override this and `kafka` with their own, so that the real service, run in-process by other
    tests of the same session, does not answer too."""
    return await new_namespace(infra)


# Databases made by this test session, dropped when it ends (see drop_test_databases).
_CREATED: list[tuple[str, str]] = []  # (admin url, database name)
_NAMESPACES: list[tuple[str, str]] = []  # (bootstrap, namespace)


@pytest.fixture(scope="session", autouse=True)
def drop_test_databases() -> Iterator[None]:
    """Drop every database and Kafka namespace this session created, so a developer's servers
    do not fill up (thousands of leftover partitions slow a broker's start to minutes)."""
    yield
    if _NAMESPACES:
        asyncio.run(_delete_namespaces())

    async def drop() -> None:
        for admin_url, name in _CREATED:
            conn = await asyncpg.connect(admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                try:  # create_database's role; cleanup must never fail a green run
                    await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
                except asyncpg.PostgresError as exc:
                    print(f"[shopdev.testing] could not drop role {name}: {exc!r}")
            finally:
                await conn.close()

    if _CREATED and os.environ.get("SHOP_TEST_KEEP_DATABASES") != "1":
        asyncio.run(drop())


@asynccontextmanager
async def kit_database(infra: Infra, prefix: str, *ddl: str) -> AsyncIterator[Database]:
    """A fresh database with the kit's tables and `ddl` (a test's own tables), for tests of the
    kit itself; dropped with the others at the session's end."""
    name = unique_name(prefix)
    admin = await asyncpg.connect(infra.pg_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    _CREATED.append((infra.pg_admin_url, name))
    url = infra.database_url(name)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(kit_metadata.create_all)
            for statement in ddl:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
    database = Database(url)
    try:
        yield database
    finally:
        await database.dispose()


def settings_for(
    settings_type: type[SettingsT],
    infra: Infra,
    *,
    kafka_namespace: str,
    database_url: str,
    **overrides: Any,
) -> SettingsT:
    """A service's settings for tests: this session's database, Kafka namespace and token keys,
    plain-text logs, and `overrides`."""
    return settings_type(
        database_url=database_url,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        log_json=False,
        jwt_public_keys=session_keys().public_keys,
        **overrides,
    )


async def create_database(infra: Infra, service_dir: Path, name: str) -> str:
    """A fresh database named `name`, owned by a fresh login role of the same name (no other
    rights, as in the local stack), with the service's migrations applied as that role; the
    role's asyncpg URL."""
    _CREATED.append((infra.pg_admin_url, name))
    password = secrets.token_hex(16)
    conn = await asyncpg.connect(infra.pg_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
        await conn.execute(
            f"CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
        )
        await conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
        await conn.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
        await conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO "{name}"')
    finally:
        await conn.close()
    # PostgreSQL 15+ gives public to the database owner already; older servers need this.
    conn = await asyncpg.connect(infra.database_url(name, driver="postgresql"))
    try:
        await conn.execute(f'ALTER SCHEMA public OWNER TO "{name}"')
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    finally:
        await conn.close()
    url = infra.database_url(name, role=(name, password))
    env = {**os.environ, "SHOP_DATABASE_URL": url}
    alembic = Path(sys.executable).parent / "alembic"
    result = await asyncio.to_thread(
        subprocess.run,
        [str(alembic), "upgrade", "head"],
        cwd=service_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrations failed for {service_dir.name}:\n{result.stderr}")
    return url


def unique_name(service: str) -> str:
    return f"t_{uuid.uuid4().hex[:10]}_{service.replace('-', '_')}"


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (consumers, relay) and give an HTTP client bound to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def poll(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 15.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Call `probe` until `until(result)` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout}s; last value: {result!r}")
        await asyncio.sleep(interval)


class KafkaProbe:
    """Publish raw envelopes to, and read everything from, topics of one namespace."""

    def __init__(self, bootstrap: str, namespace: str) -> None:
        self.bootstrap = bootstrap
        self.namespace = namespace

    async def publish(self, message: Message, *, envelope: Envelope | None = None) -> Envelope:
        """Publish one message (or a given envelope of it, e.g. to deliver it twice)."""
        envelope = envelope or envelope_of(message)
        await self.publish_envelopes([(message.TOPIC.name, envelope)])
        return envelope

    async def publish_many(self, messages: list[Message]) -> list[Envelope]:
        """Publish many messages through one producer (a producer per message is slow)."""
        sent = [(m.TOPIC.name, envelope_of(m)) for m in messages]
        await self.publish_envelopes(sent)
        return [envelope for _, envelope in sent]

    async def publish_envelopes(self, envelopes: list[tuple[str, Envelope]]) -> None:
        """Send (topic, envelope) pairs in order and wait until Kafka has them all."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    f"{self.namespace}{topic}",
                    value=orjson.dumps(envelope.model_dump(mode="json")),
                    key=envelope.key.encode(),
                    headers=[
                        ("type", envelope.type.encode()),
                        ("content-type", b"application/json"),
                    ],
                )
                for topic, envelope in envelopes
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def read_all(self, topic: str, *, idle_ms: int = 500) -> list[dict[str, Any]]:
        """Every envelope on `topic` (without namespace) from the beginning, as dicts."""
        consumer = AIOKafkaConsumer(
            f"{self.namespace}{topic}",
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        try:
            found: list[dict[str, Any]] = []
            while True:
                batch = await consumer.getmany(timeout_ms=idle_ms)
                if not batch:
                    return found
                for records in batch.values():
                    found.extend(orjson.loads(r.value) for r in records if r.value)
        finally:
            await consumer.stop()

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        count: int = 1,
        timeout: float = 15.0,
    ) -> list[dict[str, Any]]:
        """Poll `topic` until `count` envelopes match; return the matches."""

        async def matches() -> list[dict[str, Any]]:
            return [e for e in await self.read_all(topic, idle_ms=200) if predicate(e)]

        return await poll(
            matches,
            until=lambda found: len(found) >= count,
            timeout=timeout,
            message=f"{count} matching message(s) on {topic}",
        )


@pytest.fixture(scope="session")
def kafka(infra: Infra, kafka_namespace: str) -> KafkaProbe:
    return KafkaProbe(infra.kafka_bootstrap, kafka_namespace)


@asynccontextmanager
async def database_refusing(admin_url: str, database_url: str) -> AsyncIterator[None]:
    """For the block, the database of `database_url` is away for real, as during a restart but
    without touching the server others share: it refuses new connections (ALLOW_CONNECTIONS
    false) and every open one is terminated, again and again until the block ends."""
    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')

    async def terminate() -> None:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )

    async def keep_terminating() -> None:
        while True:
            await asyncio.sleep(0.2)
            await terminate()

    await terminate()
    # Gone for real (a terminated backend exits a moment after the signal) before the block runs.
    await poll(
        lambda: admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name),
        until=lambda n: n == 0,
        timeout=5,
        interval=0.02,
        message=f"connections to {name} terminated",
    )
    terminating = asyncio.create_task(keep_terminating())
    try:
        yield
    finally:
        terminating.cancel()
        await asyncio.gather(terminating, return_exceptions=True)
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
