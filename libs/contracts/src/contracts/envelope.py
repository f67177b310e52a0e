"""The wire format every message travels in."""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class Envelope(BaseModel):
    """Metadata around one message: who it is, what caused it, and its payload."""

    model_config = ConfigDict(frozen=True)

    message_id: UUID
    type: str
    version: int = 1
    correlation_id: str | None = None
    causation_id: str | None = None
    # W3C trace context of the span that queued the message (None when tracing is off); the
    # Kafka record carries it in its `traceparent` header too.
    traceparent: str | None = None
    occurred_at: datetime
    key: str
    payload: dict[str, Any]
