"""confirm: e-mail and Telegram alert channels are confirmed by their destination before alerts go there

Adds `confirmed_at` (null: waiting for confirmation), the SHA-256 of the one-time link or code sent
(`confirm_hash`), when it was sent and how often (`confirm_sent_at`, `confirm_sends`, for the resend
limit), and wrong codes entered since (`confirm_failures`). Channels that exist now keep receiving:
they are confirmed as of their creation.

Revision ID: confirm
Revises: records
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kamiyo.db import UTCDateTime

revision: str = "confirm"
down_revision: str | None = "records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_channels") as batch:
        batch.add_column(sa.Column("confirmed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("confirm_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("confirm_sent_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("confirm_sends", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("confirm_failures", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE alert_channels SET confirmed_at = created_at")
    op.create_index("ix_alert_channels_confirm_hash", "alert_channels", ["confirm_hash"])


def downgrade() -> None:
    op.drop_index("ix_alert_channels_confirm_hash", table_name="alert_channels")
    with op.batch_alter_table("alert_channels") as batch:
        for name in ("confirm_failures", "confirm_sends", "confirm_sent_at", "confirm_hash", "confirmed_at"):
            batch.drop_column(name)
