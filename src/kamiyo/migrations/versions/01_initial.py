"""exploits, reports, events, daily summaries, sources; search index and summary views

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from kamiyo.db import UTCDateTime

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PUBLIC_ONLY: dict[str, Any] = {"sqlite_where": sa.text("is_test = 0"), "postgresql_where": sa.text("is_test = false")}

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE exploits_fts USING fts5(protocol, description, content='exploits', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER exploits_fts_ai AFTER INSERT ON exploits BEGIN "
    "INSERT INTO exploits_fts(rowid, protocol, description) VALUES (new.id, new.protocol, new.description); END",
    "CREATE TRIGGER exploits_fts_ad AFTER DELETE ON exploits BEGIN "
    "INSERT INTO exploits_fts(exploits_fts, rowid, protocol, description) "
    "VALUES ('delete', old.id, old.protocol, old.description); END",
    "CREATE TRIGGER exploits_fts_au AFTER UPDATE OF protocol, description ON exploits BEGIN "
    "INSERT INTO exploits_fts(exploits_fts, rowid, protocol, description) "
    "VALUES ('delete', old.id, old.protocol, old.description); "
    "INSERT INTO exploits_fts(rowid, protocol, description) VALUES (new.id, new.protocol, new.description); END",
]
PG_SEARCH = (
    "CREATE INDEX ix_exploits_search ON exploits USING gin (to_tsvector('simple', protocol || ' ' || description))"
)
VIEWS = {
    "v_chain_summary": (
        "SELECT chain, count(*) AS exploit_count, coalesce(sum(amount_usd), 0) AS total_loss_usd, "
        "max(timestamp) AS last_exploit_at FROM exploits WHERE is_test = false GROUP BY chain"
    ),
    "v_source_summary": (
        "SELECT source, count(DISTINCT exploit_id) AS exploits, count(*) AS reports, "
        "min(reported_at) AS first_reported_at, max(reported_at) AS last_reported_at FROM reports GROUP BY source"
    ),
}


def _cascade_fk(table: str, column: str, parent: str) -> sa.Column[int]:
    """A required reference to `parent`'s id that goes with the parent row."""
    return sa.Column(
        column,
        BigId,
        sa.ForeignKey(f"{parent}.id", ondelete="CASCADE", name=f"fk_{table}_{column}_{parent}"),
        nullable=False,
    )


def upgrade() -> None:
    _exploits()
    _reports()
    _events_and_summaries()
    _meta_sources_and_search()


def _exploits() -> None:
    """The record table and its indexes (public rows only for the listing ones)."""
    op.create_table(
        "exploits",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("tx_hash", sa.String(128)),
        sa.Column("chain", sa.String(32), nullable=False),
        sa.Column("protocol", sa.String(200), nullable=False),
        sa.Column("protocol_key", sa.String(200), nullable=False),
        sa.Column("amount_usd", sa.Float),
        sa.Column("amount_sort", sa.Float, nullable=False),
        sa.Column("amount_text", sa.String(500)),
        sa.Column("recovered_usd", sa.Float),
        sa.Column("timestamp", UTCDateTime, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("attacker_address", sa.String(128)),
        sa.Column("explorer_url", sa.String(500)),
        sa.Column("verified_on_chain", sa.Boolean, nullable=False),
        sa.Column("is_test", sa.Boolean, nullable=False),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_exploits_timestamp", "exploits", ["timestamp", "id", "amount_sort"], **PUBLIC_ONLY)
    op.create_index(
        "ix_exploits_chain_timestamp", "exploits", ["chain", "timestamp", "id", "amount_sort"], **PUBLIC_ONLY
    )
    op.create_index(
        "ix_exploits_category_timestamp", "exploits", ["category", "timestamp", "id", "amount_sort"], **PUBLIC_ONLY
    )
    op.create_index(
        "ix_exploits_protocol_key_timestamp", "exploits", ["protocol_key", "timestamp", "id"], **PUBLIC_ONLY
    )
    op.create_index("ix_exploits_amount_sort", "exploits", ["amount_sort", "id", "timestamp"], **PUBLIC_ONLY)
    op.create_index("ix_exploits_chain_amount", "exploits", ["chain", "amount_sort", "id"], **PUBLIC_ONLY)
    op.create_index("ix_exploits_category_amount", "exploits", ["category", "amount_sort", "id"], **PUBLIC_ONLY)
    op.create_index("ix_exploits_chain_category", "exploits", ["chain", "category", "timestamp", "id"], **PUBLIC_ONLY)
    op.create_index("ix_exploits_tx_hash", "exploits", ["tx_hash"])
    op.create_index("ix_exploits_updated_at", "exploits", ["updated_at"])


def _reports() -> None:
    """One row per source's report of an incident."""
    op.create_table(
        "reports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _cascade_fk("reports", "exploit_id", "exploits"),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("source_ref", sa.String(512), nullable=False),
        sa.Column("url", sa.String(1000)),
        sa.Column("reported_at", UTCDateTime, nullable=False),
        sa.Column("seen_at", UTCDateTime, nullable=False),
        sa.Column("tx_hash", sa.String(128)),
        sa.Column("chain", sa.String(32)),
        sa.Column("protocol", sa.String(200), nullable=False),
        sa.Column("amount_usd", sa.Float),
        sa.Column("amount_text", sa.String(500)),
        sa.Column("recovered_usd", sa.Float),
        sa.Column("timestamp", UTCDateTime, nullable=False),
        sa.Column("category", sa.String(32)),
        sa.Column("description", sa.Text),
        sa.Column("attacker_address", sa.String(128)),
        sa.Column("raw", sa.JSON, nullable=False),
        sa.UniqueConstraint("source", "source_ref", name="uq_reports_source_ref"),
    )
    op.create_index("ix_reports_exploit_id", "reports", ["exploit_id"])
    op.create_index("ix_reports_source_exploit", "reports", ["source", "exploit_id"])
    op.create_index("ix_reports_tx_hash", "reports", ["tx_hash"])


def _events_and_summaries() -> None:
    """Events for delivery and the daily summaries."""
    op.create_table(
        "exploit_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _cascade_fk("exploit_events", "exploit_id", "exploits"),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("dispatched_at", UTCDateTime),
    )
    op.create_index("ix_exploit_events_pending", "exploit_events", ["dispatched_at", "id"])
    op.create_index("ix_exploit_events_exploit_id", "exploit_events", ["exploit_id"])

    op.create_table(
        "exploit_daily_chain",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("chain", sa.String(32), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("loss_usd", sa.Float, nullable=False),
        sa.Column("recovered_usd", sa.Float, nullable=False),
        sa.Column("last_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "exploit_daily_category",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("loss_usd", sa.Float, nullable=False),
        sa.Column("recovered_usd", sa.Float, nullable=False),
    )


def _meta_sources_and_search() -> None:
    """The data version, the sources table, full-text search and the views."""
    meta = op.create_table(
        "kamiyo_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(meta, [{"key": "data_version", "value": 0}])

    op.create_table(
        "sources",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(500)),
        sa.Column("last_run_at", UTCDateTime),
        sa.Column("last_success_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("etag", sa.String(500)),
        sa.Column("last_modified", sa.String(100)),
    )

    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute(PG_SEARCH)
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("exploits_fts_ai", "exploits_fts_ad", "exploits_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS exploits_fts")
    for table in (
        "sources",
        "kamiyo_meta",
        "exploit_daily_category",
        "exploit_daily_chain",
        "exploit_events",
        "reports",
        "exploits",
    ):
        op.drop_table(table)
