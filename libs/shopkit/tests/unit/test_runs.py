"""How a poll's messages are handed to their handlers: as few calls as key order allows."""

import uuid
from typing import Any

from contracts import Envelope
from shopkit.clock import system_clock
from shopkit.handling import Handler, calls


async def _noop(*_: Any) -> None:
    pass


async def _other(*_: Any) -> None:
    pass


RESERVE = Handler(_noop)
COMMIT = Handler(_other)


def entry(key: bytes, handler: Handler, name: str) -> tuple[Any, Handler, Any, Envelope]:
    envelope = Envelope(
        message_id=uuid.uuid4(),
        type=name,
        occurred_at=system_clock(),
        key=key.decode(),
        payload={},
    )
    return key, handler, name, envelope


def made(todo: list[tuple[Any, Handler, Any, Envelope]]) -> list[tuple[Handler, list[str]]]:
    return [(handler, [message for message, _ in items]) for handler, items in calls(todo)]


def test_one_handler_for_everything_gets_the_whole_poll_in_one_call() -> None:
    todo = [
        entry(b"a", RESERVE, "a1"),
        entry(b"a", RESERVE, "a2"),
        entry(b"b", RESERVE, "b1"),
    ]
    assert made(todo) == [(RESERVE, ["a1", "a2", "b1"])]


def test_a_keys_messages_keep_their_order_across_handlers() -> None:
    todo = [
        entry(b"a", RESERVE, "a-reserve"),
        entry(b"a", COMMIT, "a-commit"),
        entry(b"b", COMMIT, "b-commit"),
        entry(b"c", RESERVE, "c-reserve"),
        entry(b"c", COMMIT, "c-commit"),
        entry(b"c", RESERVE, "c-reserve-again"),
    ]
    assert made(todo) == [
        (RESERVE, ["a-reserve", "c-reserve"]),
        (COMMIT, ["b-commit"]),
        (COMMIT, ["a-commit", "c-commit"]),
        (RESERVE, ["c-reserve-again"]),
    ]
