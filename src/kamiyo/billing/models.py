"""Stripe subscriptions as last seen, and the ids of Stripe events already processed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kamiyo.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class Subscription(Base):
    """One Stripe subscription. `event_created` is the Stripe time of the newest event applied, so older ones lose."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    stripe_subscription_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    tier: Mapped[str] = mapped_column(String(32))  # the tier its price buys
    price_id: Mapped[str | None] = mapped_column(String(255))
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    event_created: Mapped[int | None] = mapped_column(BigInteger)
    payment_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payment_event_created: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_subscriptions_user_id", "user_id"),)


class StripeEvent(Base):
    """A Stripe event id seen once: a replay finds its row and does nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(200))
