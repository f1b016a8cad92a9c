"""submissions (community reports held for review) and onchain_checks (JSON-RPC verification of tx hashes)

Revision ID: submissions
Revises: delivery
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kamiyo.db import UTCDateTime

revision: str = "submissions"
down_revision: str | None = "delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", ondelete=ondelete, name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, _fk("submissions", "user_id", "users", "CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("exploit_id", BigId, _fk("submissions", "exploit_id", "exploits", "SET NULL")),
        sa.Column("tx_hash", sa.String(128)),
        sa.Column("chain", sa.String(32), nullable=False),
        sa.Column("protocol", sa.String(200), nullable=False),
        sa.Column("amount_usd", sa.Float),
        sa.Column("timestamp", UTCDateTime, nullable=False),
        sa.Column("category", sa.String(32)),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("attacker_address", sa.String(128)),
        sa.Column("evidence_urls", sa.JSON, nullable=False),
        sa.Column("reviewer_id", BigId, _fk("submissions", "reviewer_id", "users", "SET NULL")),
        sa.Column("review_note", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("reviewed_at", UTCDateTime),
    )
    op.create_index("ix_submissions_status_id", "submissions", ["status", "id"])
    op.create_index("ix_submissions_user_id_created_at", "submissions", ["user_id", "created_at"])
    op.create_index("ix_submissions_exploit_id", "submissions", ["exploit_id"])
    op.create_index("ix_submissions_tx_hash", "submissions", ["tx_hash"])
    op.create_table(
        "onchain_checks",
        sa.Column("exploit_id", BigId, _fk("onchain_checks", "exploit_id", "exploits", "CASCADE"), primary_key=True),
        sa.Column("tx_hash", sa.String(128), nullable=False),
        sa.Column("chain", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("checked_at", UTCDateTime, nullable=False),
        sa.Column("next_check_at", UTCDateTime),
        sa.Column("block_number", sa.BigInteger),
        sa.Column("block_time", UTCDateTime),
        sa.Column("from_address", sa.String(64)),
        sa.Column("to_address", sa.String(64)),
        sa.Column("error", sa.String(500)),
    )


def downgrade() -> None:
    op.drop_table("onchain_checks")
    op.drop_table("submissions")
