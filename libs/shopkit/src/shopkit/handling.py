"""How a poll's messages reach their handlers: the one handler kind, the per-message
adapter, and the calls a poll makes.

A handler is `fn(tx, [(message, envelope), ...])`: it gets a poll's messages of its types at
once, on the poll's transaction. `each` adapts a per-message `fn(tx, message, envelope)`.
"""

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from contracts import Envelope, Message
from shopkit import tracing
from shopkit.db import Transaction
from shopkit.logs import correlation_id

M = TypeVar("M", bound=Message)
Batch = list[tuple[Any, Envelope]]
BatchFn = Callable[[Transaction, Batch], Awaitable[None]]


class Each(Generic[M]):
    """A per-message handler `fn(tx, message, envelope)` as a batch handler (see `each`).
    Called directly it is still the per-message function."""

    def __init__(self, fn: Callable[[Transaction, M, Envelope], Awaitable[None]]) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "each")
        self.__doc__ = fn.__doc__

    async def __call__(self, tx: Transaction, message: M, envelope: Envelope) -> None:
        await self.fn(tx, message, envelope)

    async def batch(self, tx: Transaction, batch: Batch) -> None:
        for message, envelope in batch:
            with correlated(envelope):
                await self.fn(tx, message, envelope)


def each(fn: Callable[[Transaction, M, Envelope], Awaitable[None]]) -> Each[M]:
    """Adapt `fn(tx, message, envelope)` to a batch handler: it is called for each message of
    the batch in order, each under `correlated(envelope)`."""
    return Each(fn)


HandlerFn = TypeVar("HandlerFn", bound=BatchFn | Each[Any])


@dataclass(frozen=True)
class Handler:
    """A registered handler: `fn(tx, [(message, envelope), ...])`, or an `each` adapter."""

    fn: BatchFn | Each[Any]

    async def many(self, tx: Transaction, items: Batch) -> None:
        """Handle `items` in order, all in one call."""
        fn = self.fn
        if isinstance(fn, Each):
            await fn.batch(tx, items)
        elif tracing.ON:
            with tracing.consuming_batch([envelope for _, envelope in items]):
                await fn(tx, items)
        else:
            await fn(tx, items)


def calls(
    todo: list[tuple[Any, Handler, Message, Envelope]],
) -> list[tuple[Handler, list[tuple[Message, Envelope]]]]:
    """A poll's messages, `(record key, handler, message, envelope)` sorted by key, as calls to
    their handlers: as few as key order allows.

    Each key's messages are cut where the handler changes; the n-th such segment of every key
    belongs to round n, and within a round all segments of one handler make one call (keys in
    order). A key's messages thus stay in poll order, and a batch handler gets at once all it
    can: a whole poll when it handles every type, as the order saga's does."""
    rounds: list[dict[Handler, list[tuple[Message, Envelope]]]] = []
    key: Any = object()
    n = -1
    previous: Handler | None = None
    for record_key, handler, message, envelope in todo:
        if record_key != key:
            key, n, previous = record_key, -1, None
        if handler != previous:
            n, previous = n + 1, handler
            if n == len(rounds):
                rounds.append({})
        rounds[n].setdefault(handler, []).append((message, envelope))
    return [(handler, items) for round_ in rounds for handler, items in round_.items()]


@contextmanager
def correlated(envelope: Envelope) -> Iterator[None]:
    """Log lines written and messages queued while handling `envelope` carry its correlation
    id (and, tracing on, run in its CONSUMER span)."""
    token = correlation_id.set(envelope.correlation_id)
    try:
        if tracing.ON:
            with tracing.consuming(envelope):
                yield
        else:
            yield
    finally:
        correlation_id.reset(token)
