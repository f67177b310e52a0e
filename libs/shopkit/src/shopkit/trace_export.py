"""Where spans go (shopkit.tracing decides whether there are any): each service's tracer
provider, made on first use with the exporters OTEL_TRACES_EXPORTER names, plus any processor
a test added."""

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

_providers: dict[str, "TracerProvider"] = {}
_extra: list["SpanProcessor"] = []  # added to every provider (tests' in-memory exporter)


def provider(service: str) -> "TracerProvider":
    """The service's tracer provider, made on first use with the exporters the environment
    names."""
    found = _providers.get(service)
    if found is not None:
        return found
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    # With OTEL_RESOURCE_ATTRIBUTES; OTEL_SERVICE_NAME, when set, names the service.
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    made = TracerProvider(resource=Resource.create({"service.name": name}))
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").lower().replace(" ", "").split(",")
    if "otlp" in exporters:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in exporters:
        made.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    for processor in _extra:
        made.add_span_processor(processor)
    _providers[service] = made
    return made


def add(processor: "SpanProcessor") -> None:
    """`processor` on every service's provider, those made later too."""
    _extra.append(processor)
    for made in _providers.values():
        made.add_span_processor(processor)


def flush() -> None:
    """Export what is buffered (at a service's stop)."""
    for made in _providers.values():
        made.force_flush(timeout_millis=2000)  # a collector that is away must not hold a stop


def clear() -> None:
    """Shut every provider down and forget them and the added processors."""
    for made in _providers.values():
        made.shutdown()
    _providers.clear()
    _extra.clear()
