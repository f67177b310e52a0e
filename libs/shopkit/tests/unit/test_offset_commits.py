"""OffsetCommitter: handled polls are committed together, past their own records, off the loop."""

import time
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from shopdev.testing import poll
from shopkit.subscription import OffsetCommitter


class RecordingConsumer:
    """Records the offsets it is asked to commit, and when; holds partitions 0 and 1 of t."""

    def __init__(self) -> None:
        self.commits: list[tuple[float, dict[TopicPartition, int]]] = []
        self.assigned = {TopicPartition("t", 0), TopicPartition("t", 1)}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append((time.monotonic(), dict(offsets)))

    async def committed(self, count: int) -> None:
        """Until `count` commits were made (a second at most)."""

        async def made() -> int:
            return len(self.commits)

        await poll(made, until=lambda n: n >= count, timeout=1.0, interval=0.005)


def record(partition: int, offset: int) -> Any:
    return ConsumerRecord(
        topic="t",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=(),
    )


async def test_polls_handled_within_the_interval_are_committed_together() -> None:
    kafka = RecordingConsumer()
    committer = OffsetCommitter(kafka, interval=0.1)  # type: ignore[arg-type]

    committer.handled((record(0, 7), record(1, 3)))
    await kafka.committed(1)  # the first is due at once
    committer.handled((record(0, 8), record(0, 9)))
    committer.handled((record(1, 4),))
    await kafka.committed(2)

    (first_at, first), (second_at, second) = kafka.commits
    assert first == {TopicPartition("t", 0): 8, TopicPartition("t", 1): 4}  # past the records
    assert second == {TopicPartition("t", 0): 10, TopicPartition("t", 1): 5}  # both polls in one
    assert second_at - first_at >= 0.09  # not before the interval is up


async def test_nothing_handled_nothing_committed() -> None:
    kafka = RecordingConsumer()
    committer = OffsetCommitter(kafka, interval=0.01)  # type: ignore[arg-type]
    committer.handled(())
    await committer.flush()
    assert kafka.commits == []


async def test_a_revoked_partition_is_left_to_its_new_owner() -> None:
    kafka = RecordingConsumer()
    committer = OffsetCommitter(kafka, interval=0.01)  # type: ignore[arg-type]
    kafka.assigned = {TopicPartition("t", 1)}  # partition 0 went to another member
    committer.handled((record(0, 7), record(1, 3)))
    await kafka.committed(1)
    assert [offsets for _, offsets in kafka.commits] == [{TopicPartition("t", 1): 4}]
