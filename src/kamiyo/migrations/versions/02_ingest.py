"""ingest: source run log, HTTP validators per URL, merge keys of exploits (filled by the records refresh)

Revision ID: ingest
Revises: 0001_initial
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kamiyo.db import UTCDateTime

revision: str = "ingest"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "source_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("new", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_source_runs_source_started_at", "source_runs", ["source", "started_at"])
    op.create_table(
        "source_http_cache",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("url", sa.String(1000), primary_key=True),
        sa.Column("etag", sa.String(500)),
        sa.Column("last_modified", sa.String(100)),
    )
    op.create_table(
        "exploit_merge_keys",
        sa.Column(
            "exploit_id",
            BigId,
            sa.ForeignKey("exploits.id", ondelete="CASCADE", name="fk_exploit_merge_keys_exploit_id_exploits"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("amount", sa.Float),
    )
    op.create_index("ix_exploit_merge_keys_key_ts", "exploit_merge_keys", ["key", "ts"])
    # The keys of exploits stored before this revision are written by the records refresh that every command
    # runs after migrating (`kamiyo.cli_support.upgrade_database`): a migration never imports live code, whose
    # result would change under an old revision when that code does.


def downgrade() -> None:
    op.drop_table("exploit_merge_keys")
    op.drop_table("source_http_cache")
    op.drop_table("source_runs")
