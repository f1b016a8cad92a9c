"""labels: address labels from enrichment feeds (OFAC SDN, ScamSniffer)

Revision ID: labels
Revises: ingest
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kamiyo.db import UTCDateTime

revision: str = "labels"
down_revision: str | None = "ingest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "address_labels",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(128), nullable=False),
        sa.Column("label", sa.String(300), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("address", "source", name="uq_address_labels_address_source"),
    )


def downgrade() -> None:
    op.drop_table("address_labels")
