"""blocks: the block-time cache of the on-chain job

Revision ID: blocks
Revises: times
Create Date: 2026-12-06

The blocks of transactions already verified come over from `onchain_checks`, so a later round asks for none
of them again; `kamiyo db upgrade` re-derives every record afterwards (RULES_VERSION), which gives the verified
ones their block time with `time_precision` "block".
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kamiyo.db import UTCDateTime

revision: str = "blocks"
down_revision: str | None = "times"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "block_times",
        sa.Column("chain", sa.String(32), primary_key=True),
        sa.Column("number", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("time", UTCDateTime, nullable=False),
    )
    op.execute(
        "INSERT INTO block_times (chain, number, time) SELECT chain, block_number, min(block_time) "
        "FROM onchain_checks WHERE status = 'verified' AND block_number IS NOT NULL AND block_time IS NOT NULL "
        "GROUP BY chain, block_number"
    )


def downgrade() -> None:
    op.drop_table("block_times")
