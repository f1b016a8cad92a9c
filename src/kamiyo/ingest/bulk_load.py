"""Writing lone incidents for `kamiyo.ingest.bulk`: per report one exploit, its report and merge key, its
summary cells and (with --notify, if recent) an `exploit.created` event — the rows store_reports would write.

SQLite: each flush goes to the connection's own thread as one job of multi-row INSERTs (one sqlite3 step per
thousands of rows, so that thread seldom needs the GIL) while the event loop's thread parses the next rows.
The FTS insert trigger gives way to one INSERT … SELECT per flush over the new ids. When a flush brings many
rows to a small table, the indexes that loading would update row by row in random order, and the trigger,
stay dropped until `restore` rebuilds them (one sort each instead of a million B-tree inserts); otherwise
the trigger is dropped around each flush only. All of it runs in the session's transaction, so a failed or
killed import leaves them as they were. PostgreSQL: plain Core executemany.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.cache import bump_data_version
from kamiyo.exploits.models import Exploit, ExploitEvent, ReportRow
from kamiyo.ingest.merge import ReportFacts, derive
from kamiyo.ingest.models import MergeKey
from kamiyo.ingest.store import StoreResult
from kamiyo.ingest.summaries import SummaryDeltas
from kamiyo.sources.base import Report
from kamiyo.vocabulary.protocols import protocol_match_key

FLUSH = 50_000
DROP_FACTOR = 4  # drop indexes when one flush brings at least a quarter of the rows the table will then hold
# Indexes kept while loading: rows arrive in their key order, so they only append. By leading column: rising
# ids, one time for the whole load; and reports by (source, exploit id), a few sources.
APPENDED = frozenset({"id", "exploit_id", "updated_at", "first_seen_at", "seen_at"})
LIVE_INDEXES = frozenset({"ix_reports_source_exploit"})
LOADED_TABLES = ("exploits", "reports", "exploit_merge_keys")
FTS_TRIGGER = "exploits_fts_ai"
FTS_FILL = (  # the columns of exploits_fts (migration "facets")
    "INSERT INTO exploits_fts(rowid, protocol, description, name, aliases) "
    "SELECT id, protocol, description, name, aliases FROM exploits "
)
# Derived facts written as they come from `derive` (lists and objects as JSON), in this order.
LATER_FACTS = (
    "name", "aliases", "chains", "tx_hashes", "technique", "classification", "target_type", "attack_contracts",
    "vulnerable_contracts", "links", "time_precision", "amount_status", "pricing",
)  # fmt: skip
EXPLOIT_COLUMNS = (
    "id", "tx_hash", "chain", "protocol", "protocol_key", "amount_usd", "amount_sort", "amount_text", "recovered_usd",
    "timestamp", "category", "description", "attacker_address", "explorer_url", "verified_on_chain", "is_test",
    "first_seen_at", "updated_at", "returned_usd", "loss_kind", "disputed", "corrections", *LATER_FACTS,
)  # fmt: skip
REPORT_COLUMNS = (
    "exploit_id", "source", "source_ref", "url", "reported_at", "seen_at", "tx_hash", "chain", "protocol", "amount_usd",
    "amount_text", "recovered_usd", "timestamp", "category", "description", "attacker_address", "raw", "details",
)  # fmt: skip
KEY_COLUMNS = ("exploit_id", "key", "ts", "amount")
EVENT_COLUMNS = ("exploit_id", "type", "changes", "created_at")
TARGETS = (*LOADED_TABLES, "exploit_events")
Statement = tuple[str, Sequence[Any]]


def lone_facts(report: Report, now: datetime) -> dict[str, Any]:
    """The exploit row store_reports makes of a lone report: `derive([report])`, plus the columns of a new row."""
    return derive([cast(ReportFacts, report)]) | {"verified_on_chain": False, "first_seen_at": now, "updated_at": now}


def sqlite_time(value: datetime) -> str:
    """What UTCDateTime stores in SQLite (naive UTC, always microseconds); a test holds them equal."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _same(value: Any) -> Any:
    return value


def _memo(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`convert`, remembering the last value: a column that repeats one value converts it once."""
    last: list[Any] = [object(), None]

    def run(value: Any) -> Any:
        if value != last[0]:
            last[:] = [value, convert(value)]
        return last[1]

    return run


class Loader:
    """Buffers lone reports and writes them FLUSH at a time; `settle` makes everything so far complete."""

    def __init__(self, session: AsyncSession, *, notify_since: datetime | None, now: datetime) -> None:
        self.session, self.notify_since, self.now = session, notify_since, now
        self.result = StoreResult()
        self.deltas = SummaryDeltas()
        self.dirty = False  # rows or summary deltas that `settle` has not completed yet
        self.pending: list[Report] = []
        self.rows = 0  # exploits in the table
        self.down = False  # indexes and the FTS insert trigger dropped (`dropped`, once the job ran)
        self.dropped: list[tuple[str, str]] = []  # (name, CREATE statement)
        self.next_id: int | None = None
        self.job: asyncio.Future[Any] | None = None
        dialect = session.get_bind().dialect
        self.sqlite = dialect.name == "sqlite"
        self.when: Callable[[datetime], Any] = sqlite_time if self.sqlite else _same
        self.json: Callable[[Any], Any] = _same
        if self.sqlite:
            raw = cast(Table, ReportRow.__table__).c.raw.type.dialect_impl(dialect).bind_processor(dialect)
            self.json = _memo(raw) if raw else _same
        self.max_params = 999
        self.aio: Any = None  # the session connection's aiosqlite.Connection

    async def start(self) -> None:
        self.rows = (await self.session.execute(select(func.count()).select_from(Exploit))).scalar_one()
        if self.sqlite:
            self.aio = (await (await self.session.connection()).get_raw_connection()).driver_connection
            self.max_params = await self._run(lambda conn: conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))

    async def add(self, reports: list[Report]) -> None:
        self.pending.extend(reports)
        if len(self.pending) >= FLUSH:
            await self.flush(may_drop=True)

    async def flush(self, *, may_drop: bool = False) -> None:
        reports, self.pending = self.pending, []
        if not reports:
            return
        facts = [lone_facts(r, self.now) for r in reports]
        if self.sqlite:
            ids = await self._write_sqlite(reports, facts, may_drop)
        else:
            ids = await self._write_any(reports, facts)
        self.rows += len(ids)
        for fact, exploit_id in zip(facts, ids, strict=True):
            self.deltas.added(fact)
            if not fact["is_test"]:
                self.result.created.append(exploit_id)
        self.result.reports_new += len(reports)
        self.dirty = True

    async def settle(self) -> None:
        """Everything loaded so far complete in the database (rows, summaries, data version); the session
        is free for store_reports afterwards."""
        await self.flush()
        await self.drain()
        self.next_id = None  # store_reports may insert exploits too
        if self.dirty:
            await self.deltas.apply(self.session)
            await bump_data_version(self.session)
            self.deltas, self.dirty = SummaryDeltas(), False

    async def restore(self) -> None:
        """Rebuild the dropped indexes (after `settle`)."""
        if self.down:
            await self._run(_run_all, [(sql, ()) for _, sql in self.dropped])
            self.down, self.dropped = False, []

    async def drain(self) -> None:
        if self.job is not None:
            job, self.job = self.job, None
            await job

    def _events(self, facts: Sequence[dict[str, Any]], ids: Sequence[int]) -> list[Any]:
        if self.notify_since is None:
            return []
        since, now = self.notify_since, self.when(self.now)
        created = [i for f, i in zip(facts, ids, strict=True) if not f["is_test"] and f["timestamp"] >= since]
        self.result.events += len(created)
        return [v for i in created for v in (i, "exploit.created", self.json({}), now)]

    def _rows(self, reports: Sequence[Report], facts: Sequence[dict[str, Any]], ids: Sequence[int]) -> list[list[Any]]:
        """Rows in EXPLOIT_COLUMNS, REPORT_COLUMNS and KEY_COLUMNS order, what store_reports writes for them, one
        flat list of values per table (as multi-row INSERTs bind them)."""
        when, json, now = self.when, self.json, self.when(self.now)
        exploits: list[Any] = []
        report_rows: list[Any] = []
        keys: list[Any] = []
        for r, f, i in zip(reports, facts, ids, strict=True):
            ts = when(f["timestamp"])
            exploits.extend((
                i, f["tx_hash"], f["chain"], f["protocol"], f["protocol_key"], f["amount_usd"], f["amount_sort"],
                f["amount_text"], f["recovered_usd"], ts, f["category"], f["description"], f["attacker_address"],
                f["explorer_url"], False, f["is_test"], now, now, f["returned_usd"], f["loss_kind"], f["disputed"],
                json(f["corrections"]),
                *(json(f[k]) if isinstance(f[k], list | dict) else f[k] for k in LATER_FACTS),
            ))  # fmt: skip
            report_rows.extend((
                i, r.source, r.source_ref, r.url, when(r.reported_at) if r.reported_at else None, now, r.tx_hash,
                r.chain, r.protocol, _float(r.amount_usd), r.amount_text, _float(r.recovered_usd), ts, r.category,
                r.description, r.attacker_address, json(r.raw), json(r.details),
            ))  # fmt: skip
            if key := protocol_match_key(r.protocol):
                keys.extend((i, key, f["timestamp"].timestamp(), f["amount_usd"]))
        return [exploits, report_rows, keys]

    async def _write_sqlite(
        self, reports: Sequence[Report], facts: Sequence[dict[str, Any]], may_drop: bool
    ) -> list[int]:
        """Ids follow max(id): what SQLite picks without AUTOINCREMENT, and this transaction holds the write lock."""
        if self.next_id is None:
            await self.drain()
            found = await self.session.execute(select(func.max(Exploit.id)))
            self.next_id = (found.scalar() or 0) + 1
        first = self.next_id
        ids = list(range(first, first + len(reports)))
        self.next_id += len(ids)
        self.down = self.down or (may_drop and len(ids) * DROP_FACTOR >= self.rows + len(ids))
        rows = [*self._rows(reports, facts, ids), self._events(facts, ids)]
        statements: list[Statement] = []
        for table, columns, part in zip(
            TARGETS, (EXPLOIT_COLUMNS, REPORT_COLUMNS, KEY_COLUMNS, EVENT_COLUMNS), rows, strict=True
        ):
            statements.extend(_multi_insert(table, columns, part, self.max_params))
        await self.drain()  # one job at a time: the rows above were built while the previous one ran
        self.job = self._start(
            partial(_load, statements=statements, ids=(first, ids[-1]), down=self.down, dropped=self.dropped)
        )
        return ids

    async def _write_any(self, reports: Sequence[Report], facts: Sequence[dict[str, Any]]) -> list[int]:
        exploits = insert(cast(Table, Exploit.__table__)).returning(Exploit.id, sort_by_parameter_order=True)
        ids = list((await self.session.execute(exploits, list(facts))).scalars())
        _, report_rows, keys = self._rows(reports, facts, ids)
        tables = (ReportRow, MergeKey, ExploitEvent)
        flat = (report_rows, keys, self._events(facts, ids))
        for model, columns, values in zip(tables, (REPORT_COLUMNS, KEY_COLUMNS, EVENT_COLUMNS), flat, strict=True):
            rows = [
                dict(zip(columns, values[i : i + len(columns)], strict=True))
                for i in range(0, len(values), len(columns))
            ]
            if rows:
                await self.session.execute(insert(cast(Table, model.__table__)), rows)
        return ids

    def _start(self, job: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        """Queue `job(sqlite3 connection)` on aiosqlite's thread, as SQLAlchemy's aiosqlite dialect does, and
        return its future without waiting for it."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.aio._tx.put_nowait((future, partial(job, self.aio._conn)))
        return future

    async def _run(self, job: Callable[..., Any], *args: Any) -> Any:
        await self.drain()
        return await self._start(lambda conn: job(conn, *args))


def _multi_insert(table: str, columns: Sequence[str], values: list[Any], max_params: int) -> list[Statement]:
    """INSERTs of `values` (rows laid end to end), as many rows each as the bound-parameter limit allows."""
    width = len(columns)
    per = max(1, min(max_params // width, 20_000)) * width
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    one = f"({', '.join('?' * width)})"
    return [
        (head + ", ".join([one] * (len(part) // width)), part)
        for part in (values[start : start + per] for start in range(0, len(values), per))
    ]


def _appended(conn: sqlite3.Connection, index: str) -> bool:
    columns = conn.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (index,)).fetchall()
    return bool(columns) and columns[0][0] in APPENDED


def _run_all(conn: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    for sql, params in statements:
        conn.execute(sql, params)


def _load(
    conn: sqlite3.Connection,
    *,
    statements: Sequence[Statement],
    ids: tuple[int, int],
    down: bool,
    dropped: list[tuple[str, str]],
) -> None:
    """One flush, on the connection's thread, inside the open transaction. `down`: indexes and trigger stay
    dropped after it (they go with the first such flush); else the trigger is dropped and recreated around
    it. (Every schema change makes SQLite prepare the big INSERTs again, so not once per flush when many.)"""
    if down and not dropped:
        found = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND ((type = 'index' "
            f"AND tbl_name IN ({', '.join('?' * len(LOADED_TABLES))})) OR (type = 'trigger' AND name = ?))",
            (*LOADED_TABLES, FTS_TRIGGER),
        ).fetchall()
        dropped.extend((name, sql) for name, sql in found if name not in LIVE_INDEXES and not _appended(conn, name))
        for name, _ in dropped:
            conn.execute(f'DROP {"TRIGGER" if name == FTS_TRIGGER else "INDEX"} "{name}"')
    trigger = None if down else conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (FTS_TRIGGER,)).fetchone()
    if trigger:
        conn.execute(f"DROP TRIGGER {FTS_TRIGGER}")
    _run_all(conn, statements)
    if trigger or any(name == FTS_TRIGGER for name, _ in dropped):
        conn.execute(FTS_FILL + "WHERE id BETWEEN ? AND ?", ids)
    if trigger:
        conn.execute(trigger[0])
