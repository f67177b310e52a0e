"""A consumer polls again at once after an empty poll; FastStream's batch subscriber would sleep."""

from typing import Any

import anyio
import pytest
from faststream.kafka import KafkaBroker

from contracts import Envelope
from contracts.wallet import BalanceCharged
from shopkit.db import Database
from shopkit.messaging import LONG_POLL_MS, Consumer
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
    async def ignore(session: Any, message: BalanceCharged, env: Envelope) -> None:
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
