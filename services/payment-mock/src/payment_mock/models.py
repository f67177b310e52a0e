"""Payment provider tables: payments (keyed by Idempotency-Key) and the one behavior row."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shopkit.db import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Payment(Base):
    __tablename__ = "payments"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    # The key lives on the row itself, so "one key, one charge" is a unique constraint.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    order_id: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10))  # APPROVED | DECLINED | CANCELLED
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_payments_order_id_seq", "order_id", "seq"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )


class ProviderBehavior(Base):
    """How the provider misbehaves; one row (id 1) so every replica agrees."""

    __tablename__ = "provider_behavior"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decline_rate: Mapped[float] = mapped_column(Float, default=0.0)
    timeout_rate: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
