"""Creating the topics from libs/contracts, with their partition counts, explicitly."""

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from contracts import ALL_TOPICS


async def ensure_topics(bootstrap: str, namespace: str = "", *, attempts: int = 30) -> list[str]:
    """Create every contract topic and its dead-letter topic if missing; return the names."""
    wanted = {f"{namespace}{t.name}": t.partitions for t in ALL_TOPICS}
    wanted |= {f"{namespace}{t.dead_letter}": 1 for t in ALL_TOPICS}
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, num_partitions=n, replication_factor=1)
                for name, n in wanted.items()
                if name not in existing
            ]
            if missing:
                try:
                    await admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass
                await _wait_until_served(bootstrap, list(wanted))
            return sorted(wanted)
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)
        finally:
            await admin.close()
    return sorted(wanted)


async def _wait_until_served(bootstrap: str, topics: list[str], timeout: float = 30.0) -> None:
    """Return once every partition of `topics` answers an offsets request.

    A topic that was just created is listed before its partitions are served; a consumer that
    reads it at once gets NotLeaderForPartition and sees an empty topic.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                partitions = [
                    TopicPartition(topic, p)
                    for topic in topics
                    for p in consumer.partitions_for_topic(topic) or ()
                ]
                if len({tp.topic for tp in partitions}) == len(topics):
                    await consumer.end_offsets(partitions)
                    return
                await consumer._client.force_metadata_update()
            except KafkaError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"topics not served after {timeout}s: {topics}")
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
