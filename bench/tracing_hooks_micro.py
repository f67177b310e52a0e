"""Tracing off: each hot-path hook against the code it replaced (copied here), per call.

Run: uv run --frozen python bench/tracing_hooks_micro.py (seconds; medians of interleaved runs;
recorded in docs/operations.md, "Traces").
"""

import statistics
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from contracts import Envelope, Message
from contracts.catalog import ReserveStock, StockLine
from shopkit import tracing
from shopkit.clock import system_clock
from shopkit.logs import correlation_id as current_correlation
from shopkit.messaging import correlated
from shopkit.outbox import envelope
from shopkit.relay import record_headers


class EnvelopeBefore(BaseModel):
    """The envelope without `traceparent`."""

    model_config = ConfigDict(frozen=True)
    message_id: UUID
    type: str
    version: int = 1
    correlation_id: str | None = None
    causation_id: str | None = None
    occurred_at: datetime
    key: str
    payload: dict[str, Any]


def envelope_before(message: Message, *, correlation_id: str | None = None) -> EnvelopeBefore:
    return EnvelopeBefore(
        message_id=uuid.uuid4(),
        type=message.type_name(),
        version=message.VERSION,
        correlation_id=correlation_id or current_correlation.get(),
        causation_id=None,
        occurred_at=system_clock(),
        key=str(getattr(message, message.KEY)),
        payload=message.model_dump(mode="json"),
    )


@contextmanager
def correlated_before(envelope: Envelope) -> Iterator[None]:
    token = current_correlation.set(envelope.correlation_id)
    try:
        yield
    finally:
        current_correlation.reset(token)


def headers_before(row: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [("type", row["type"].encode()), ("content-type", b"application/json")]


def main() -> None:
    assert not tracing.ON, "measure with tracing off (unset OTEL_TRACES_EXPORTER)"
    message = ReserveStock(
        order_id="o1", operation_id="op1", lines=(StockLine(product_id="p1", quantity=2),)
    )
    envelope_ = envelope(message, correlation_id="c1")
    old_envelope = envelope_before(message, correlation_id="c1")
    row = {"type": "ReserveStock", "traceparent": None}

    def handling(cm: Callable[[Envelope], AbstractContextManager[None]]) -> Callable[[], None]:
        def run() -> None:
            with cm(envelope_):
                pass

        return run

    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "envelope": (
            lambda: envelope_before(message, correlation_id="c1"),
            lambda: envelope(message, correlation_id="c1"),
        ),
        "envelope JSON (outbox row)": (old_envelope.model_dump_json, envelope_.model_dump_json),
        "correlated()": (handling(correlated_before), handling(correlated)),
        "relay headers": (lambda: headers_before(row), lambda: record_headers(row, tracing.ON)),
    }
    for name, (old, new) in pairs.items():
        before, after = [], []
        for _ in range(7):  # interleaved, so load on the machine hits both alike
            before.append(min(timeit.repeat(old, number=20000, repeat=3)) / 20000 * 1e6)
            after.append(min(timeit.repeat(new, number=20000, repeat=3)) / 20000 * 1e6)
        print(
            f"{name:28s} before {statistics.median(before):.3f} us"
            f"  after {statistics.median(after):.3f} us"
        )


if __name__ == "__main__":
    main()
