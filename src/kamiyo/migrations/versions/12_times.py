"""times: unknown report times of backfilled history are null, not the moment Kamiyo ingested them

Revision ID: times
Revises: enrich
Create Date: 2026-12-06

Older versions stamped a report without its own publication time with the moment it was stored
(`reported_at = seen_at`). In a source's first stored batch (the bundled dataset, the first fetch of a
list's history) that moment says nothing about when the source reported the incident: it becomes null.
Publication times (which differ from `seen_at`), community submissions (their creation time) and the
stamps of later batches (a list's new item, published since the previous fetch) are kept. Downgrading
leaves the nulls: the `enrich` downgrade fills them with `seen_at` again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "times"
down_revision: str | None = "enrich"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    # One grouped scan, then one indexed update per source (a correlated minimum per row would be quadratic).
    # The stored values go back as they came, so the comparison is exact on either engine.
    firsts = bind.execute(
        sa.text("SELECT source, min(seen_at) FROM reports WHERE source <> 'community' GROUP BY source")
    ).all()
    for source, first in firsts:
        bind.execute(
            sa.text(
                "UPDATE reports SET reported_at = NULL"
                " WHERE source = :source AND seen_at = :first AND reported_at = seen_at"
            ),
            {"source": source, "first": first},
        )
    if firsts:  # cached answers and ETags of the exploit API carry the old times
        bind.execute(sa.text("UPDATE kamiyo_meta SET value = value + 1 WHERE key = 'data_version'"))


def downgrade() -> None:
    pass
