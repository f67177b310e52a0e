"""A subscription polls again at once after an empty poll, and a lingering one waits only after a
poll that was not full."""

from typing import Any

import pytest

from contracts import Envelope
from contracts.wallet import BalanceCharged
from shopkit import subscription
from shopkit.db import Database
from shopkit.messaging import Consumer
from shopkit.settings import ServiceSettings
from shopkit.subscription import LONG_POLL_MS, Subscription


class ScriptedConsumer:
    """Answers getmany from a script and records how it was asked."""

    def __init__(self, *answers: dict[str, list[str]]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[str, list[str]]:
        self.asked.append((timeout_ms, max_records))
        return self.answers.pop(0)


def scripted(sub: Subscription, *answers: dict[str, list[str]]) -> ScriptedConsumer:
    kafka = ScriptedConsumer(*answers)
    sub.consumer = kafka  # type: ignore[assignment]
    return kafka


async def test_an_empty_poll_is_followed_by_the_next_poll_without_a_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = Consumer("kit-test-poll")

    @consumer.handles(BalanceCharged)
    async def ignore(tx: Any, batch: list[tuple[BalanceCharged, Envelope]]) -> None:
        pass

    settings = ServiceSettings(consumer_batch_size=7)
    sub = consumer.subscribe(Database(settings.database_url), settings)

    async def pause(*_: Any) -> None:
        raise AssertionError("the subscription paused after an empty poll")

    monkeypatch.setattr(subscription.asyncio, "sleep", pause)
    kafka = scripted(sub, {}, {"tp-0": ["a", "b"], "tp-1": ["c"]})

    assert await sub.poll() == []
    assert await sub.poll() == ["a", "b", "c"]
    assert kafka.asked == [(LONG_POLL_MS, 7), (LONG_POLL_MS, 7)]


async def test_a_lingering_consumer_waits_after_a_poll_that_was_not_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = Consumer("kit-test-linger", linger_ms=200, max_records=3)
    settings = ServiceSettings(consumer_batch_size=100)
    sub = consumer.subscribe(Database(settings.database_url), settings)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(subscription.asyncio, "sleep", sleep)
    scripted(sub, {"tp-0": ["a"]}, {"tp-0": ["b", "c", "d"]}, {}, {}, {"tp-0": ["e"]})

    assert await sub.poll() == ["a"]
    assert waits == []
    assert await sub.poll() == ["b", "c", "d"]  # after the linger
    assert len(waits) == 1 and 0.1 < waits[0] <= 0.2
    assert await sub.poll() == []  # a full poll: the next comes at once
    assert await sub.poll() == []  # an empty poll: the next comes at once
    assert await sub.poll() == ["e"]
    assert len(waits) == 1
