"""Order tables: one row per order holding its saga, and the order's history."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, MetaData, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shopkit.db import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Order(Base):
    """The order as clients see it (columns) and the saga's full state (`saga`, JSONB)."""

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(10))  # PENDING | PAID | FAILED | CANCELLED
    step: Mapped[str] = mapped_column(String(30))  # the saga step; DONE when nothing is in flight
    operation: Mapped[str | None] = mapped_column(String(10))  # CANCEL | MODIFY in progress
    saga: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The step's reply deadline; for provider steps, when the worker may (re)take it.
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when the saga stopped retrying its step (no deadline then) until an operator retries
    # it or a late reply moves it on; `last_error` says why.
    parked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # The placing request's correlation id and W3C trace context (None with tracing off): every
    # later step, cancel and provider call of the order carries them (see shopkit.tracing).
    correlation_id: Mapped[str | None] = mapped_column(String(100))
    traceparent: Mapped[str | None] = mapped_column(String(55))

    __table_args__ = (
        Index("ix_orders_user_created", "user_id", "created_at", "id"),
        Index("ix_orders_deadline", "deadline", postgresql_where=text("step <> 'DONE'")),
        Index(
            "ix_orders_parked", "parked_at", "id", postgresql_where=text("parked_at IS NOT NULL")
        ),
    )


class PaymentCheck(Base):
    """An order whose payment timed out: the provider may still approve it late, so it is looked
    up there (and any approved payment cancelled) a few times, at `due_at`."""

    __tablename__ = "payment_checks"

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checks: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_payment_checks_due", "due_at"),)


class OrderHistory(Base):
    """Every state change and compensation of an order, oldest first by `seq`."""

    __tablename__ = "order_history"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(10))
    step: Mapped[str] = mapped_column(String(30))
    event: Mapped[str] = mapped_column(String(50))
    detail: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_order_history_order_seq", "order_id", "seq"),)
