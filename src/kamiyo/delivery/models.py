"""Subscriptions (webhook endpoints, chat/e-mail channels) and the durable delivery queue.

A delivery is a row before it is an attempt: `webhook_deliveries` and `alerts_sent` hold one row per
(event, target), unique, with the exact body frozen at creation. `next_attempt_at` doubles as the
lease: claiming a row pushes it into the future, so a worker that dies leaves it due again later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kamiyo.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class SubscriptionColumns:
    """What webhook endpoints and channels share: owner, filters and health state."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(String(500), default="")
    # Normalised filters (see delivery.filters); min_amount_usd also as a column for SQL reporting.
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    min_amount_usd: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserWebhook(SubscriptionColumns, Base):
    __tablename__ = "user_webhooks"

    url: Mapped[str] = mapped_column(String(2000))
    secret_enc: Mapped[str] = mapped_column(Text)
    previous_secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_user_webhooks_user_id", "user_id"),)


class AlertChannel(SubscriptionColumns, Base):
    """A Discord/Slack webhook URL, Telegram chat id or e-mail address (encrypted; `target_hint` is masked).

    E-mail and Telegram destinations get alerts only once confirmed (`confirmed_at`): a one-time link
    or code is sent there, stored here as its SHA-256 only (`confirm_hash`).
    """

    __tablename__ = "alert_channels"

    kind: Mapped[str] = mapped_column(String(16))
    target_enc: Mapped[str] = mapped_column(Text)
    target_hint: Mapped[str] = mapped_column(String(200))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirm_hash: Mapped[str | None] = mapped_column(String(64))
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirm_sends: Mapped[int] = mapped_column(Integer, default=0)  # sent to the current destination
    confirm_failures: Mapped[int] = mapped_column(Integer, default=0)  # wrong codes since the last one sent

    __table_args__ = (
        Index("ix_alert_channels_user_kind", "user_id", "kind"),
        Index("ix_alert_channels_confirm_hash", "confirm_hash"),
    )


class DeliveryColumns:
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("exploit_events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(32))
    exploit_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[str] = mapped_column(String(64))  # `webhook-id`: the same on every attempt
    body: Mapped[str] = mapped_column(Text)  # exactly what is sent (webhooks) or the rendered message
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(DeliveryColumns, Base):
    __tablename__ = "webhook_deliveries"

    webhook_id: Mapped[int] = mapped_column(ForeignKey("user_webhooks.id", ondelete="CASCADE"))

    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_id", "webhook_id", "id"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )


class AlertSent(DeliveryColumns, Base):
    __tablename__ = "alerts_sent"

    channel_id: Mapped[int] = mapped_column(ForeignKey("alert_channels.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        UniqueConstraint("channel_id", "event_id", name="uq_alerts_sent_channel_event"),
        Index("ix_alerts_sent_due", "status", "next_attempt_at"),
        Index("ix_alerts_sent_channel_id", "channel_id", "id"),
        Index("ix_alerts_sent_event_id", "event_id"),
    )


class WebhookAttempt(Base):
    """One HTTP attempt of a webhook delivery: what was answered, how fast, or what went wrong."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    response_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    response_excerpt: Mapped[str | None] = mapped_column(String(1000))
    error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_webhook_attempts_delivery_id", "delivery_id"),)


class DeliveryState(Base):
    """Counters shared by all processes; `subscriptions` is bumped on every subscription change."""

    __tablename__ = "delivery_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
