"""search: narrow covering index for text search on SQLite

A `q=` search on SQLite either walks the other filters' index and tests membership in the FTS5 match
set, or (for a small match set, or to count it) looks every matching rowid up. Looking rowids up in the
wide `exploits` table costs a page read per row; this index holds just what the filters and sorts test,
so the lookups stay in a few megabytes. PostgreSQL searches through its GIN index and needs none.
Like the FTS5 table and the GIN index, it is a search structure that the models do not declare.

Revision ID: search
Revises: submissions
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "search"
down_revision: str | None = "submissions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_exploits_search_facets"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.create_index(
        INDEX,
        "exploits",
        ["id", "timestamp", "amount_sort", "chain", "category"],
        sqlite_where=sa.text("is_test = 0"),
    )
    # Keep planner statistics complete where they exist (a database without any is analysed in full later).
    if bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is not None:
        op.execute(f"ANALYZE {INDEX}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
