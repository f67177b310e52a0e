"""Kafka for tests: a fresh namespace per session and a probe that publishes and reads raw
envelopes."""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from contracts import Envelope, Message
from shopdev.testing.infra import Infra
from shopdev.testing.services import poll
from shopkit.kafka_admin import ensure_topics
from shopkit.outbox import envelope as envelope_of

# Kafka namespaces made by this test session, deleted when it ends (see drop_test_databases).
_NAMESPACES: list[tuple[str, str]] = []  # (bootstrap, namespace)


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
