"""The relay's partitioner sends every key where aiokafka's default (and Java's) would."""

import uuid

from aiokafka.partitioner import DefaultPartitioner

from shopkit.relay import partition_for


def test_every_key_goes_to_the_default_partition() -> None:
    default = DefaultPartitioner()
    for partitions in ([0], list(range(6)), list(range(7))):
        for _ in range(500):
            key = str(uuid.uuid4()).encode()
            expected = default(key, partitions, partitions)
            assert partition_for(key, partitions, partitions) == expected
            assert partition_for(key, partitions, partitions) == expected  # remembered


def test_a_message_without_key_goes_to_an_available_partition() -> None:
    assert partition_for(None, [0, 1, 2], [2]) == 2
