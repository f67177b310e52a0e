"""Coupon tables: definitions, the acceptance line, user coupons, known users, saga operations."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shopkit.db import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Coupon(Base):
    """A coupon definition; issued_quantity moves when a place in line becomes ISSUED."""

    __tablename__ = "coupons"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    discount_type: Mapped[str] = mapped_column(String(10))  # FIXED | PERCENT
    discount_value: Mapped[int] = mapped_column(BigInteger)
    total_quantity: Mapped[int] = mapped_column(Integer)
    issued_quantity: Mapped[int] = mapped_column(Integer, default=0)
    min_order_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    valid_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("issued_quantity <= total_quantity", name="not_over_issued"),
        CheckConstraint("issued_quantity >= 0", name="issued_not_negative"),
    )


class CouponLine(Base):
    """The first-come-first-served line of one coupon: the only row the issue burst updates.

    Kept apart from `coupons` so the issuing consumer (issued_quantity) never waits behind the
    HTTP burst for the same row lock.
    """

    __tablename__ = "coupon_lines"

    coupon_id: Mapped[str] = mapped_column(ForeignKey("coupons.id"), primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (CheckConstraint("accepted <= capacity", name="not_over_accepted"),)


class UserCoupon(Base):
    """One user's coupon; `position` is its place in the coupon's line (1 = first come)."""

    __tablename__ = "user_coupons"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    coupon_id: Mapped[str] = mapped_column(ForeignKey("coupons.id"))
    user_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(10))
    position: Mapped[int | None] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    order_id: Mapped[str | None] = mapped_column(String(36))

    __table_args__ = (
        UniqueConstraint("coupon_id", "user_id", name="uq_user_coupons_one_per_user"),
        Index("ix_user_coupons_user_seq", "user_id", "seq"),
    )


class KnownUser(Base):
    """User ids learned from wallet's UserRegistered events."""

    __tablename__ = "known_users"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CouponOperation(Base):
    """The outcome of each saga command, so a re-sent command gets the same answer."""

    __tablename__ = "coupon_operations"

    operation_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36))
    user_coupon_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(10))  # RESERVE | REPRICE | RELEASE
    # RESERVED | REPRICED | FAILED | RELEASED | VOIDED
    outcome: Mapped[str] = mapped_column(String(10))
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    detail: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_coupon_operations_order", "order_id", "user_coupon_id"),)


# A user coupon row as the services read it (each column of UserCoupon, by name).
USER_COUPON = (
    "SELECT seq, id, coupon_id, user_id, status, position, requested_at, issued_at, expires_at,"
    " used_at, order_id FROM user_coupons WHERE id = $1"
)
