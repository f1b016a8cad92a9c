"""facets: search over every name and alias; the chain filter over every chain hit; a target-type index

Rebuilds the text search (SQLite FTS5 `exploits_fts` and its triggers, the PostgreSQL GIN index) over protocol,
description, `name` and `aliases`, re-indexing the stored rows. Adds `exploit_chains` (each record's chains
other than its primary one), filled from the stored `chains` and kept by triggers on `exploits` from then on,
and a partial index of typed records for the `target_type` filter.

Revision ID: facets
Revises: blocks
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "facets"
down_revision: str | None = "blocks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FTS_TRIGGERS = ("exploits_fts_ai", "exploits_fts_ad", "exploits_fts_au")
CHAIN_TRIGGERS = ("exploit_chains_ai", "exploit_chains_au")


def _sqlite_fts(columns: Sequence[str]) -> list[str]:
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    return [
        f"CREATE VIRTUAL TABLE exploits_fts USING fts5({names}, content='exploits', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
        "CREATE TRIGGER exploits_fts_ai AFTER INSERT ON exploits BEGIN "
        f"INSERT INTO exploits_fts(rowid, {names}) VALUES (new.id, {new}); END",
        "CREATE TRIGGER exploits_fts_ad AFTER DELETE ON exploits BEGIN "
        f"INSERT INTO exploits_fts(exploits_fts, rowid, {names}) VALUES ('delete', old.id, {old}); END",
        f"CREATE TRIGGER exploits_fts_au AFTER UPDATE OF {names} ON exploits BEGIN "
        f"INSERT INTO exploits_fts(exploits_fts, rowid, {names}) VALUES ('delete', old.id, {old}); "
        f"INSERT INTO exploits_fts(rowid, {names}) VALUES (new.id, {new}); END",
        "INSERT INTO exploits_fts(exploits_fts) VALUES ('rebuild')",
    ]


def _pg_search(document: str) -> list[str]:
    return [
        "DROP INDEX IF EXISTS ix_exploits_search",
        f"CREATE INDEX ix_exploits_search ON exploits USING gin (to_tsvector('simple', {document}))",
    ]


# A record's chains other than its primary one (`chains` is a JSON list). Inserts are skipped for the usual
# single-chain record without reading its list twice; an update of `chain` or `chains` rewrites the record's rows.
SQLITE_SECONDARY = "SELECT new.id, value FROM json_each(new.chains) WHERE value <> new.chain"
SQLITE_CHAINS = [
    "CREATE TRIGGER exploit_chains_ai AFTER INSERT ON exploits WHEN json_array_length(new.chains) > 1 BEGIN "
    f"INSERT OR IGNORE INTO exploit_chains(exploit_id, chain) {SQLITE_SECONDARY}; END",
    "CREATE TRIGGER exploit_chains_au AFTER UPDATE OF chain, chains ON exploits "
    "WHEN old.chains IS NOT new.chains OR old.chain IS NOT new.chain BEGIN "
    "DELETE FROM exploit_chains WHERE exploit_id = old.id; "
    f"INSERT OR IGNORE INTO exploit_chains(exploit_id, chain) {SQLITE_SECONDARY}; END",
    "INSERT OR IGNORE INTO exploit_chains(exploit_id, chain) SELECT e.id, j.value FROM exploits AS e, "
    "json_each(e.chains) AS j WHERE json_array_length(e.chains) > 1 AND j.value <> e.chain",
]
PG_CHAINS = [
    "CREATE FUNCTION exploit_chains_sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'UPDATE' THEN DELETE FROM exploit_chains WHERE exploit_id = OLD.id; END IF; "
    "INSERT INTO exploit_chains(exploit_id, chain) SELECT DISTINCT NEW.id, c FROM json_array_elements_text(NEW.chains) "
    "AS c WHERE c <> NEW.chain ON CONFLICT DO NOTHING; RETURN NULL; END $$",
    "CREATE TRIGGER exploit_chains_ai AFTER INSERT ON exploits FOR EACH ROW "
    "WHEN (json_array_length(NEW.chains) > 1) EXECUTE FUNCTION exploit_chains_sync()",
    "CREATE TRIGGER exploit_chains_au AFTER UPDATE OF chain, chains ON exploits FOR EACH ROW "
    "WHEN (OLD.chains::text IS DISTINCT FROM NEW.chains::text OR OLD.chain IS DISTINCT FROM NEW.chain) "
    "EXECUTE FUNCTION exploit_chains_sync()",
    "INSERT INTO exploit_chains(exploit_id, chain) SELECT DISTINCT e.id, c FROM exploits AS e, "
    "json_array_elements_text(e.chains) AS c WHERE json_array_length(e.chains) > 1 AND c <> e.chain "
    "ON CONFLICT DO NOTHING",
]


def _drop_sqlite_fts() -> None:
    for trigger in FTS_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS exploits_fts")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "exploit_chains",
        sa.Column("chain", sa.String(32), primary_key=True),
        sa.Column(
            "exploit_id",
            BigId,
            sa.ForeignKey("exploits.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
    )
    op.create_index("ix_exploit_chains_exploit_id", "exploit_chains", ["exploit_id"])
    op.create_index(
        "ix_exploits_target_type_timestamp",
        "exploits",
        ["target_type", "timestamp", "id", "amount_sort"],
        sqlite_where=sa.text("is_test = 0 AND target_type IS NOT NULL"),
        postgresql_where=sa.text("is_test = false AND target_type IS NOT NULL"),
    )
    if sqlite:
        _drop_sqlite_fts()
        statements = [*_sqlite_fts(("protocol", "description", "name", "aliases")), *SQLITE_CHAINS]
    else:
        statements = [*_pg_search("protocol || ' ' || description || ' ' || name || ' ' || aliases::text"), *PG_CHAINS]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for trigger in CHAIN_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + ("" if sqlite else " ON exploits"))
    if sqlite:
        _drop_sqlite_fts()
        for statement in _sqlite_fts(("protocol", "description")):
            op.execute(statement)
    else:
        op.execute("DROP FUNCTION IF EXISTS exploit_chains_sync()")
        for statement in _pg_search("protocol || ' ' || description"):
            op.execute(statement)
    op.drop_index("ix_exploits_target_type_timestamp", table_name="exploits")
    op.drop_index("ix_exploit_chains_exploit_id", table_name="exploit_chains")
    op.drop_table("exploit_chains")
