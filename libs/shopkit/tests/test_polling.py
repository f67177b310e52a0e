"""A consumer polls again at once after an empty poll (FastStream's batch subscriber would sleep),
and a lingering one waits only after a poll that was not full."""

from typing import Any

import anyio
import pytest
from faststream.kafka import KafkaBroker

from contracts import Envelope
from contracts.wallet import BalanceCharged
from shopkit import messaging
from shopkit.db import Database
from shopkit.messaging import LONG_POLL_MS, Consumer, long_poll
from shopkit.settings import ServiceSettings


class ScriptedConsumer:
    """Answers getmany from a script and records how it was asked."""

    def __init__(self, *answers: dict[str, list[str]]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[str, list[str]]:
        self.asked.append((timeout_ms, max_records))
        return self.answers.pop(0)


async def test_an_empty_poll_is_followed_by_the_next_poll_without_a_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = Consumer("kit-test-poll")

    @consumer.handles(BalanceCharged)
    async def ignore(tx: Any, batch: list[tuple[BalanceCharged, Envelope]]) -> None:
        pass

    broker = KafkaBroker(logger=None)
    settings = ServiceSettings(consumer_batch_size=7)
    consumer.attach(broker, Database(settings.database_url), settings)
    (subscriber,) = broker.subscribers

    async def pause(*_: Any) -> None:
        raise AssertionError("the subscriber paused after an empty poll")

    monkeypatch.setattr(anyio, "sleep", pause)
    kafka = ScriptedConsumer({}, {"tp-0": ["a", "b"], "tp-1": ["c"]})

    assert await subscriber.get_msg(kafka) == ()
    assert await subscriber.get_msg(kafka) == ("a", "b", "c")
    assert kafka.asked == [(LONG_POLL_MS, 7), (LONG_POLL_MS, 7)]


async def test_a_lingering_consumer_waits_after_a_poll_that_was_not_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Subscriber:
        get_msg: Any = None

    subscriber = Subscriber()
    long_poll(subscriber, 3, linger_ms=200)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(messaging.asyncio, "sleep", sleep)
    kafka = ScriptedConsumer({"tp-0": ["a"]}, {"tp-0": ["b", "c", "d"]}, {}, {}, {"tp-0": ["e"]})

    assert await subscriber.get_msg(kafka) == ("a",)
    assert waits == []
    assert await subscriber.get_msg(kafka) == ("b", "c", "d")  # after the linger
    assert len(waits) == 1 and 0.1 < waits[0] <= 0.2
    assert await subscriber.get_msg(kafka) == ()  # a full poll: the next comes at once
    assert await subscriber.get_msg(kafka) == ()  # an empty poll: the next comes at once
    assert await subscriber.get_msg(kafka) == ("e",)
    assert len(waits) == 1
