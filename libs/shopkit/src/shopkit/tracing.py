"""Traces (OpenTelemetry): one order is one trace, from `POST /api/orders` through the outbox,
Kafka and every consumer to the payment provider's call.

Configured only by the standard variables: on when OTEL_TRACES_EXPORTER names `otlp` or
`console` and OTEL_SDK_DISABLED is not `true` (read once, at import); then each service has its
own tracer provider (resource `service.name` from OTEL_SERVICE_NAME or the service's name)
exporting in batches. Off, every hook below is one test of `ON`: no span, no header, no string.

How the context travels: the span at hand when a message is queued (the HTTP request's, or the
consumer's span of the message being handled) is written into the envelope as `traceparent`
(W3C), in the outbox row's JSON; the relay copies it into the Kafka record's `traceparent`
header; a consumer handles each message inside a CONSUMER span whose parent is that context. The
order saga keeps the context of the request that placed the order on its row, so every later
step, cancel and modify of that order (and the provider call) stays in the order's trace.
"""

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from shopkit import trace_export
from shopkit.trace_export import provider as provider  # the service's, for tests to read

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import SpanProcessor

    from contracts import Envelope


def _from_environment() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").lower().replace(" ", "").split(",")
    return bool({"otlp", "console"} & set(exporters))


ON: bool = _from_environment()
_tracers: dict[str, trace.Tracer] = {}
# The tracer of the service whose consumer or background job runs in this task, and the
# consumer group's name.
_tracer: ContextVar[tuple[trace.Tracer, str] | None] = ContextVar("shop_tracer", default=None)
# While a set-based handler runs: each message's correlation id -> its consumer span's context,
# so what the handler queues for a message continues that message's trace (`parent_for`).
_batch: ContextVar[dict[str, str] | None] = ContextVar("shop_trace_batch", default=None)


def tracer(service: str) -> trace.Tracer:
    found = _tracers.get(service)
    if found is None:
        found = _tracers[service] = provider(service).get_tracer("shopkit")
    return found


def fastapi_telemetry(service: str) -> "TelemetryConfig | None":
    """FastAPI's own server spans (they read an incoming `traceparent`) on the service's
    provider; None when tracing is off."""
    if not ON:
        return None
    return {
        "tracing": True,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "auto_configure": False,
        "tracer_provider": provider(service),
    }


def serving(service: str, consumer: str = "") -> None:
    """Consumer spans and provider calls made in this task (and the tasks it starts) belong to
    `service` (and its consumer group `consumer`)."""
    if ON:
        _tracer.set((tracer(service), consumer))


def shutdown() -> None:
    """Export what is buffered (at a service's stop)."""
    trace_export.flush()


def current_traceparent() -> str | None:
    """The `traceparent` of the span at hand; None when there is none or tracing is off."""
    if not ON:
        return None
    return _format(trace.get_current_span().get_span_context())


def parent_for(correlation_id: str | None) -> str | None:
    """The `traceparent` a message queued now carries: that of the message with this
    correlation id in a set-based handler's batch, else the span at hand."""
    if not ON:
        return None
    batch = _batch.get()
    if batch is not None and correlation_id in batch:
        return batch[correlation_id]
    return current_traceparent()


def within(origin: str | None, correlation_id: str | None) -> str | None:
    """The parent for a message of a long-lived thing (an order) whose trace is `origin`: the
    span at hand (`parent_for`) when it is in that trace, else `origin` itself, so a later
    request about it (a cancel) continues its trace instead of starting its own."""
    if not ON:
        return None
    candidate = parent_for(correlation_id)
    if origin is None or trace_id_of(candidate) == trace_id_of(origin):
        return candidate
    return origin


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a `traceparent`, for a trace viewer's link."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def _format(context: SpanContext) -> str | None:
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _context_of(traceparent: str | None) -> SpanContext | None:
    parts = (traceparent or "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        context = SpanContext(
            trace_id=int(parts[1], 16),
            span_id=int(parts[2], 16),
            is_remote=True,
            trace_flags=TraceFlags(int(parts[3], 16) & 0xFF),
        )
    except ValueError:
        return None
    return context if context.is_valid else None


def _parent(traceparent: str | None) -> Any:
    """An OpenTelemetry context whose parent span is `traceparent` (a new trace if None)."""
    remote = _context_of(traceparent)
    return trace.set_span_in_context(NonRecordingSpan(remote)) if remote else None


def _created_in(traceparent: str | None) -> list[Link]:
    """The link from a message's CONSUMER span to the context it was queued in (its parent
    too), as OpenTelemetry's messaging conventions ask: a viewer shows the hop either way."""
    remote = _context_of(traceparent)
    return [Link(remote, {"messaging.operation.type": "create"})] if remote else []


def _message_attributes(envelope: "Envelope", consumer: str) -> dict[str, Any]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.consumer.group.name": consumer,
        "messaging.message.id": str(envelope.message_id),
        "messaging.kafka.message.key": envelope.key,
        "shop.message.type": envelope.type,
        "shop.correlation_id": envelope.correlation_id or "",
    }


@contextmanager
def consuming(envelope: "Envelope") -> Iterator[None]:
    """Handle one message inside a CONSUMER span, child of the context it was queued in."""
    found = _tracer.get() if ON else None
    if found is None:
        yield
        return
    with found[0].start_as_current_span(
        f"process {envelope.type}",
        context=_parent(envelope.traceparent),
        links=_created_in(envelope.traceparent),
        kind=SpanKind.CONSUMER,
        attributes=_message_attributes(envelope, found[1]),
    ):
        yield


@contextmanager
def consuming_batch(envelopes: Sequence["Envelope"]) -> Iterator[None]:
    """Handle messages together (a set-based handler): a CONSUMER span per message, each the
    child of its message's context, open for the whole batch; what the handler queues for a
    message continues that message's span (see `parent_for`)."""
    found = _tracer.get() if ON else None
    if found is None:
        yield
        return
    tracer_, consumer = found
    size = len(envelopes)
    spans = [
        tracer_.start_span(
            f"process {e.type}",
            context=_parent(e.traceparent),
            links=_created_in(e.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                **_message_attributes(e, consumer),
                "messaging.batch.message_count": size,
            },
        )
        for e in envelopes
    ]
    by_correlation = {
        e.correlation_id: _format(s.get_span_context())
        for e, s in zip(envelopes, spans, strict=True)
        if e.correlation_id
    }
    token = _batch.set({k: v for k, v in by_correlation.items() if v})
    try:
        yield
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR)
        raise
    finally:
        _batch.reset(token)
        for span in spans:
            span.end()


@contextmanager
def calling(name: str, traceparent: str | None, **attributes: Any) -> Iterator[dict[str, str]]:
    """An outgoing call as a CLIENT span, child of `traceparent` (or the span at hand); yields
    the headers that carry its context to the server ({} when tracing is off)."""
    found = _tracer.get() if ON else None
    if found is None:
        yield {}
        return
    context = _parent(traceparent) if traceparent else None
    with found[0].start_as_current_span(
        name, context=context, kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        header = _format(span.get_span_context())
        yield {"traceparent": header} if header else {}


def link_to(traceparent: str | None) -> None:
    """Link the span at hand to `traceparent` (a cancel's request to its order's trace)."""
    if not ON:
        return
    remote = _context_of(traceparent)
    if remote is not None:
        trace.get_current_span().add_link(remote, {"shop.link": "order"})


def log_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the span at hand, for log lines; None when off or none."""
    if not ON:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def export_to(processor: "SpanProcessor") -> None:
    """Turn tracing on in this process with `processor` on every service's provider (tests)."""
    global ON
    ON = True
    trace_export.add(processor)


def reset() -> None:
    """Back to what the environment says, with no providers (tests)."""
    global ON
    trace_export.clear()
    _tracers.clear()
    ON = _from_environment()
