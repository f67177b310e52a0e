"""Creating the topics from libs/contracts, with their partition counts, explicitly.

Retention is set here, not left to the broker's defaults, because the inbox's retention is
reasoned against it (docs/operations.md): a record lives at most RETENTION_MS + SEGMENT_MS
(Kafka deletes whole segments, and a segment rolls after SEGMENT_MS), 8 days, well inside the
inbox's 14. Dead-letter topics are never deleted by retention: they are the copy of an
operator's queue (each service's `dead_letters` table is the queue itself).
"""

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from contracts import ALL_TOPICS

DAY_MS = 24 * 3600 * 1000
RETENTION_MS = 7 * DAY_MS
SEGMENT_MS = DAY_MS
TOPIC_CONFIG = {"retention.ms": str(RETENTION_MS), "segment.ms": str(SEGMENT_MS)}
DEAD_LETTER_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}


def topic_configs(namespace: str = "") -> dict[str, tuple[int, dict[str, str]]]:
    """Every topic's name with its partition count and configuration."""
    wanted = {f"{namespace}{t.name}": (t.partitions, TOPIC_CONFIG) for t in ALL_TOPICS}
    wanted |= {f"{namespace}{t.dead_letter}": (1, DEAD_LETTER_CONFIG) for t in ALL_TOPICS}
    return wanted


async def ensure_topics(bootstrap: str, namespace: str = "", *, attempts: int = 30) -> list[str]:
    """Create every contract topic and its dead-letter topic if missing, and set the retention
    of those that exist; return the names."""
    configs = topic_configs(namespace)
    wanted = {name: n for name, (n, _) in configs.items()}
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, num_partitions=n, replication_factor=1, topic_configs=config)
                for name, (n, config) in configs.items()
                if name not in existing
            ]
            present = [
                ConfigResource(ConfigResourceType.TOPIC, name, config)
                for name, (_, config) in configs.items()
                if name in existing
            ]
            if present:  # topics made before their retention was set here
                for response in await admin.alter_configs(present):
                    refused = [r for r in response.resources if r[0] != 0]
                    if refused:
                        raise RuntimeError(f"topic configuration refused: {refused}")
            if missing:
                try:
                    await admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass
                await _wait_until_served(bootstrap, wanted)
            return sorted(wanted)
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)
        finally:
            await admin.close()
    return sorted(wanted)


async def _wait_until_served(
    bootstrap: str, partitions_of: dict[str, int], timeout: float = 30.0
) -> None:
    """Return once every partition of the topics (name: partition count) answers an offsets
    request.

    A topic that was just created is listed before its partitions are served; a consumer that
    reads it at once gets NotLeaderForPartition and sees an empty topic. Asking for a partition
    the consumer has no metadata of makes it fetch the topic's.
    """
    partitions = [TopicPartition(t, p) for t, n in partitions_of.items() for p in range(n)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await consumer.end_offsets(partitions)
                return
            except KafkaError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"topics not served after {timeout}s: {list(partitions_of)}")
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


def main() -> None:
    import os
    import sys

    bootstrap = os.environ.get("SHOP_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    namespace = os.environ.get("SHOP_KAFKA_NAMESPACE", "")
    names = asyncio.run(ensure_topics(bootstrap, namespace))
    print(f"[topics] {len(names)} topics ready on {bootstrap}", file=sys.stderr)


if __name__ == "__main__":
    main()
