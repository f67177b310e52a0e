"""Trace context in envelopes and log lines; uvicorn's own lines as JSON."""

import logging
import logging.config
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
import uvicorn.config
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from contracts.wallet import UserRegistered
from shopkit import tracing
from shopkit.logs import configure_logging
from shopkit.messaging import correlated
from shopkit.outbox import envelope as envelope_of

MESSAGE = UserRegistered(
    user_id="u1",
    name="A",
    email="a@example.com",
    role="user",
    registered_at=datetime(2026, 1, 1, tzinfo=UTC),
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.export_to(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.reset()


def lines(out: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_off_by_default_nothing_is_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    tracing.reset()
    assert not tracing.ON
    assert envelope_of(MESSAGE).traceparent is None
    assert tracing.fastapi_telemetry("svc") is None


@pytest.mark.parametrize(
    ("exporter", "disabled", "on"),
    [
        ("otlp", "", True),
        ("console", "", True),
        ("otlp,console", "", True),
        ("none", "", False),
        ("", "", False),
        ("otlp", "true", False),
    ],
)
def test_only_the_standard_variables_turn_it_on(
    monkeypatch: pytest.MonkeyPatch, exporter: str, disabled: str, on: bool
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", exporter)
    monkeypatch.setenv("OTEL_SDK_DISABLED", disabled)
    assert tracing._from_environment() is on


def test_a_message_queued_in_a_span_carries_it_and_its_consumer_continues_it(
    spans: InMemorySpanExporter,
) -> None:
    tracing.serving("wallet", "wallet-consumer")
    with tracing.tracer("wallet").start_as_current_span("POST /api/users") as request:
        envelope = envelope_of(MESSAGE)
    context = request.get_span_context()
    flags = f"{int(context.trace_flags):02x}"
    assert envelope.traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags}"
    assert tracing.trace_id_of(envelope.traceparent) == f"{context.trace_id:032x}"
    with correlated(envelope):
        reply = envelope_of(MESSAGE)
    consumer = next(s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER)
    assert consumer.parent is not None and consumer.parent.span_id == context.span_id
    assert consumer.context.trace_id == context.trace_id
    assert (
        reply.traceparent == f"00-{context.trace_id:032x}-{consumer.context.span_id:016x}-{flags}"
    )


def test_a_later_request_about_an_order_continues_the_orders_trace(
    spans: InMemorySpanExporter,
) -> None:
    origin = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    with tracing.tracer("order").start_as_current_span("POST /api/orders/x/cancel"):
        assert tracing.within(origin, None) == origin
        tracing.link_to(origin)
    [cancel] = spans.get_finished_spans()
    assert [link.context.trace_id for link in cancel.links] == [int("a" * 32, 16)]
    assert tracing.within(None, None) is None  # no span at hand, no trace recorded


def test_log_lines_carry_the_trace_and_uvicorns_lines_are_json(
    spans: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # what uvicorn sets up first
    configure_logging("svc")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
    with tracing.tracer("svc").start_as_current_span("work") as span:
        logging.getLogger("shopkit.test").warning("inside")
    logging.getLogger("shopkit.test").warning("outside")
    started, inside, outside = lines(capsys.readouterr().out)
    assert (started["logger"], started["service"]) == ("uvicorn.error", "svc")
    assert started["msg"] == "Started server process [1]"
    context = span.get_span_context()
    assert (inside["trace_id"], inside["span_id"]) == (
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert "trace_id" not in outside


def test_the_service_is_named_by_otel_service_name_or_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    tracing.reset()
    own = tracing.provider("order").resource.attributes
    monkeypatch.setenv("OTEL_SERVICE_NAME", "order-eu")
    tracing.reset()
    named = tracing.provider("order").resource.attributes
    tracing.reset()
    assert (own["service.name"], own["deployment.environment"]) == ("order", "test")
    assert named["service.name"] == "order-eu"
