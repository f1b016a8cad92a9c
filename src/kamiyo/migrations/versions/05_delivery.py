"""user_webhooks, alert_channels, webhook_deliveries, webhook_attempts, alerts_sent, delivery_state

Revision ID: delivery
Revises: accounts
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kamiyo.db import UTCDateTime

revision: str = "delivery"
down_revision: str | None = "accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PG_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION kamiyo_notify_events() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('kamiyo_events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
PG_NOTIFY_TRIGGER = (
    "CREATE TRIGGER exploit_events_notify AFTER INSERT ON exploit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION kamiyo_notify_events()"
)


def _subscription_columns(table: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id",
            BigId,
            sa.ForeignKey("users.id", ondelete="CASCADE", name=f"fk_{table}_user_id_users"),
            nullable=False,
        ),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("filters", sa.JSON, nullable=False),
        sa.Column("min_amount_usd", sa.Float),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(500)),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    ]


def _delivery_columns(table: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "event_id",
            BigId,
            sa.ForeignKey("exploit_events.id", ondelete="CASCADE", name=f"fk_{table}_event_id_exploit_events"),
        ),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("exploit_id", sa.BigInteger),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("response_status", sa.Integer),
        sa.Column("latency_ms", sa.Float),
        sa.Column("error", sa.String(500)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime),
    ]


def _cascade_fk(table: str, column: str, parent: str) -> sa.Column[int]:
    """A required reference to `parent`'s id that goes with the parent row."""
    return sa.Column(
        column,
        BigId,
        sa.ForeignKey(f"{parent}.id", ondelete="CASCADE", name=f"fk_{table}_{column}_{parent}"),
        nullable=False,
    )


def upgrade() -> None:
    _endpoints()
    _deliveries()
    _state()


def _endpoints() -> None:
    """Where users receive events: webhooks and alert channels."""
    op.create_table(
        "user_webhooks",
        *_subscription_columns("user_webhooks"),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=False),
        sa.Column("previous_secret_enc", sa.Text),
        sa.Column("previous_secret_expires_at", UTCDateTime),
    )
    op.create_index("ix_user_webhooks_user_id", "user_webhooks", ["user_id"])
    op.create_table(
        "alert_channels",
        *_subscription_columns("alert_channels"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target_enc", sa.Text, nullable=False),
        sa.Column("target_hint", sa.String(200), nullable=False),
    )
    op.create_index("ix_alert_channels_user_kind", "alert_channels", ["user_id", "kind"])


def _deliveries() -> None:
    """One row per delivery to make, and each attempt at a webhook delivery."""
    op.create_table(
        "webhook_deliveries",
        *_delivery_columns("webhook_deliveries"),
        _cascade_fk("webhook_deliveries", "webhook_id", "user_webhooks"),
        sa.UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_event"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_webhook_id", "webhook_deliveries", ["webhook_id", "id"])
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])

    op.create_table(
        "alerts_sent",
        *_delivery_columns("alerts_sent"),
        _cascade_fk("alerts_sent", "channel_id", "alert_channels"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.UniqueConstraint("channel_id", "event_id", name="uq_alerts_sent_channel_event"),
    )
    op.create_index("ix_alerts_sent_due", "alerts_sent", ["status", "next_attempt_at"])
    op.create_index("ix_alerts_sent_channel_id", "alerts_sent", ["channel_id", "id"])
    op.create_index("ix_alerts_sent_event_id", "alerts_sent", ["event_id"])

    op.create_table(
        "webhook_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _cascade_fk("webhook_attempts", "delivery_id", "webhook_deliveries"),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("response_status", sa.Integer),
        sa.Column("latency_ms", sa.Float),
        sa.Column("response_excerpt", sa.String(1000)),
        sa.Column("error", sa.String(500)),
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])


def _state() -> None:
    """The subscriptions version workers compare, and on PostgreSQL a NOTIFY for every new event."""
    state = op.create_table(
        "delivery_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(state, [{"name": "subscriptions", "value": 0}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_NOTIFY_FUNCTION)
        op.execute(PG_NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS exploit_events_notify ON exploit_events")
        op.execute("DROP FUNCTION IF EXISTS kamiyo_notify_events()")
    op.drop_table("delivery_state")
    op.drop_table("webhook_attempts")
    op.drop_table("alerts_sent")
    op.drop_table("webhook_deliveries")
    op.drop_table("alert_channels")
    op.drop_table("user_webhooks")
