"""records: loss semantics, disputes and corrections on exploits; merge conflicts

Revision ID: records
Revises: covering
Create Date: 2026-12-06

`returned_usd` starts as the stored `recovered_usd`; `kamiyo db upgrade` re-derives every record with the
current rules afterwards (`kamiyo.ingest.rederive`), which fills the other new columns from the reports.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kamiyo.db import UTCDateTime

revision: str = "records"
down_revision: str | None = "covering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): the exploits table keeps its partial indexes and search triggers.
    op.add_column("exploits", sa.Column("returned_usd", sa.Float(), nullable=True))
    op.add_column("exploits", sa.Column("loss_kind", sa.String(16), nullable=False, server_default="realised"))
    op.add_column("exploits", sa.Column("disputed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("exploits", sa.Column("corrections", sa.JSON(), nullable=False, server_default="[]"))
    op.execute("UPDATE exploits SET returned_usd = recovered_usd")
    # Approved corrections become corrections of their record (`correction:<id>`), not a second community source.
    op.execute(
        "UPDATE reports SET source_ref = 'correction:' || substr(source_ref, 12) "
        "WHERE source = 'community' AND source_ref IN "
        "(SELECT 'submission:' || CAST(id AS VARCHAR(20)) FROM submissions WHERE kind = 'correction')"
    )
    op.create_table(
        "merge_conflicts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("source_ref", sa.String(512), nullable=False),
        sa.Column("exploit_id", sa.BigInteger(), sa.ForeignKey("exploits.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tx_hash", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("source", "source_ref", "exploit_id", name="uq_merge_conflicts_report_exploit"),
    )
    op.create_index("ix_merge_conflicts_exploit_id", "merge_conflicts", ["exploit_id"])


def downgrade() -> None:
    op.execute(
        "UPDATE reports SET source_ref = 'submission:' || substr(source_ref, 12) "
        "WHERE source = 'community' AND source_ref LIKE 'correction:%'"
    )
    op.drop_index("ix_merge_conflicts_exploit_id", table_name="merge_conflicts")
    op.drop_table("merge_conflicts")
    for column in ("corrections", "disputed", "loss_kind", "returned_usd"):
        op.drop_column("exploits", column)
