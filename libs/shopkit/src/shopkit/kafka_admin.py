"""Creating the topics from libs/contracts, with their partition counts, explicitly."""

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

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
            return sorted(wanted)
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)
        finally:
            await admin.close()
    return sorted(wanted)


def main() -> None:
    import os
    import sys

    bootstrap = os.environ.get("SHOP_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    namespace = os.environ.get("SHOP_KAFKA_NAMESPACE", "")
    names = asyncio.run(ensure_topics(bootstrap, namespace))
    print(f"[topics] {len(names)} topics ready on {bootstrap}", file=sys.stderr)


if __name__ == "__main__":
    main()
