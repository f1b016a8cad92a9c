"""enrich: record facts (names, chains, hashes, technique, contracts, links), time and amount provenance,
honest report times, and the price cache

Revision ID: enrich
Revises: confirm
Create Date: 2026-12-06

Existing records start with their one name and chain as `name`/`chains`, their tx hash as `tx_hashes`, day
precision, and `stated`/`unpriced` amounts; `kamiyo db upgrade` re-derives every record afterwards, which fills
the rest from the reports. A report's `reported_at` becomes nullable (unknown for backfilled history).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kamiyo.db import UTCDateTime

revision: str = "enrich"
down_revision: str | None = "confirm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTS = ("aliases", "chains", "tx_hashes", "attack_contracts", "vulnerable_contracts", "links")
SOURCE_SUMMARY = (
    "SELECT source, count(DISTINCT exploit_id) AS exploits, count(*) AS reports, "
    "min(reported_at) AS first_reported_at, max(reported_at) AS last_reported_at FROM reports GROUP BY source"
)


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): the exploits table keeps its partial indexes and search triggers.
    op.add_column("exploits", sa.Column("name", sa.String(200), nullable=False, server_default=""))
    for column in LISTS:
        op.add_column("exploits", sa.Column(column, sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("exploits", sa.Column("technique", sa.String(200), nullable=True))
    op.add_column("exploits", sa.Column("classification", sa.String(200), nullable=True))
    op.add_column("exploits", sa.Column("target_type", sa.String(32), nullable=True))
    op.add_column("exploits", sa.Column("time_precision", sa.String(8), nullable=False, server_default="day"))
    op.add_column("exploits", sa.Column("amount_status", sa.String(16), nullable=False, server_default="unpriced"))
    op.add_column("exploits", sa.Column("pricing", sa.JSON(), nullable=True))
    op.execute("UPDATE exploits SET name = protocol")
    op.execute("UPDATE exploits SET amount_status = 'stated' WHERE amount_usd IS NOT NULL")
    op.add_column("reports", sa.Column("details", sa.JSON(), nullable=False, server_default="{}"))
    # SQLite rebuilds the table to drop NOT NULL; the view over it is dropped first (a rename checks views).
    op.execute("DROP VIEW IF EXISTS v_source_summary")
    with op.batch_alter_table("reports") as batch:
        batch.alter_column("reported_at", existing_type=UTCDateTime, nullable=True)
    op.execute(f"CREATE VIEW v_source_summary AS {SOURCE_SUMMARY}")
    op.create_table(
        "price_quotes",
        sa.Column("coin", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("price_usd", sa.Float(), nullable=True),
        sa.Column("symbol", sa.String(32), nullable=True),
        sa.Column("quoted_at", UTCDateTime, nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("fetched_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("price_quotes")
    op.execute("DROP VIEW IF EXISTS v_source_summary")
    op.execute("UPDATE reports SET reported_at = seen_at WHERE reported_at IS NULL")
    with op.batch_alter_table("reports") as batch:
        batch.alter_column("reported_at", existing_type=UTCDateTime, nullable=False)
    op.execute(f"CREATE VIEW v_source_summary AS {SOURCE_SUMMARY}")
    op.drop_column("reports", "details")
    for column in (
        "pricing", "amount_status", "time_precision", "target_type", "classification", "technique", *LISTS, "name",
    ):  # fmt: skip
        op.drop_column("exploits", column)
