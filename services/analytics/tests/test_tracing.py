"""The projection's work is part of the trace of the order it counts: a CONSUMER span per event."""

from collections.abc import Iterator
from datetime import date

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from analytics.handlers import CONSUMER
from shopkit import tracing
from shopkit.outbox import envelope

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.export_to(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.reset()


async def test_each_projected_event_gets_a_consumer_span_in_its_trace(
    shop, spans: InMemorySpanExporter
) -> None:
    today = date(2061, 3, 3)
    shop.today(today)
    paid = shop.order([("traced-product", 2, 1_000)], on=today)
    queued = envelope(paid).model_copy(update={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01"})
    await shop.publish(paid, envelope=queued)
    await shop.caught_up([queued])

    [span] = [
        s
        for s in spans.get_finished_spans()
        if (s.attributes or {}).get("messaging.message.id") == str(queued.message_id)
    ]
    assert span.kind == SpanKind.CONSUMER and span.name == "process OrderPaid"
    assert (span.attributes or {})["messaging.consumer.group.name"] == CONSUMER
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_SPAN
