"""`kamiyo import` and `kamiyo export` through the real console script, and the bulk path of the import
(`kamiyo.ingest.bulk`): the same rows as store_reports, idempotent, searchable, and all-or-nothing."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects import sqlite as sqlite_dialect

from kamiyo.db import Database
from kamiyo.exploits.filters import search_condition
from kamiyo.exploits.models import DailyCategoryStat, DailyChainStat, Exploit, ExploitEvent, Meta, ReportRow
from kamiyo.ingest import bulk, bulk_load, store
from kamiyo.ingest.importer import RowError, row_to_reports
from kamiyo.ingest.merge import derive
from kamiyo.ingest.models import MergeKey
from kamiyo.sources.base import Report
from tests.support.cli import kamiyo as run_kamiyo
from tests.support.services import psql

ROWS = [
    {
        "protocol": "Euler Finance",
        "chain": "Ethereum",
        "amount_usd": 197000000,
        "timestamp": "2023-03-13T08:50:35Z",
        "category": "flash loan",
        "tx_hash": "0xC310A0AFFE2169D1F6FEEC1C63DBC7F7C62A887FA48795D327D4D2DA2D6B111D",
        "description": "Donation attack",
    },
    {"protocol": "Curve", "chain": "ethereum", "amount_usd": "70000000", "timestamp": "2023-07-30"},
    {"protocol": "", "chain": "bsc", "timestamp": "2023-07-30"},
    {"protocol": "Bad amount", "chain": "bsc", "timestamp": "2023-07-30", "amount_usd": "lots"},
    {"protocol": "Bad tx", "chain": "ethereum", "timestamp": "2023-07-30", "tx_hash": "0x1234"},
]


def kamiyo(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kamiyo(*args, KAMIYO_DATABASE_URL=f"sqlite:///{db}")


def test_jsonl_import_is_idempotent_and_reports_bad_rows(tmp_path: Path) -> None:
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b"\n".join(orjson.dumps(r) for r in ROWS) + b"\nnot json\n")
    db = tmp_path / "k.db"
    first = kamiyo(db, "import", str(src))
    second = kamiyo(db, "import", str(src))
    assert first.returncode == 0, first.stderr
    assert "2 new exploits" in first.stderr and "4 skipped" in first.stderr
    assert "row 3: protocol: required" in first.stderr and "row 4: amount_usd: not a number" in first.stderr
    assert "row 6: not a JSON object" in first.stderr
    assert "0 new exploits, 0 new reports, 2 unchanged" in second.stderr

    out = tmp_path / "out.jsonl"
    exported = kamiyo(db, "export", "--format", "jsonl", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["protocol"] for e in lines] == ["Curve", "Euler Finance"]
    euler = lines[1]
    assert euler["tx_hash"] == ROWS[0]["tx_hash"].lower() and euler["category"] == "flash_loan"  # type: ignore[union-attr]
    assert euler["timestamp"] == "2023-03-13T08:50:35Z" and euler["amount_usd"] == 197000000


def test_export_then_import_round_trips_through_csv_and_json(tmp_path: Path) -> None:
    src = tmp_path / "rows.json"
    src.write_bytes(orjson.dumps(ROWS[:2]))
    db = tmp_path / "a.db"
    assert kamiyo(db, "import", str(src)).returncode == 0
    csv_out = tmp_path / "x.csv"
    assert kamiyo(db, "export", "--format", "csv", "--out", str(csv_out)).returncode == 0
    with csv_out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["protocol"] for r in rows] == ["Curve", "Euler Finance"] and rows[0]["sources"] == "import"
    other = tmp_path / "b.db"
    result = kamiyo(other, "import", str(csv_out))
    assert result.returncode == 0 and "2 new exploits" in result.stderr, result.stderr
    again = kamiyo(other, "import", str(csv_out))
    assert "0 new exploits" in again.stderr


def test_import_of_a_missing_or_malformed_file_fails_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    missing = kamiyo(db, "import", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": 5}')
    result = kamiyo(db, "import", str(broken))
    assert result.returncode == 2 and "cannot import" in result.stderr and "Traceback" not in result.stderr


# --- the bulk path ------------------------------------------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)
SOURCES = ["rekt", "slowmist", "peckshield", "zachxbt", "defillama"]
WORDS = ["Kavo", "Mirelu", "Tobaz", "Quenni", "Rastel", "Vorpa", "Zindu", "Pellom", "Gratix", "Hoven"]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches, flushes and held-back reports small enough for a few hundred rows to cross every boundary."""
    monkeypatch.setattr(store, "BATCH", 50)
    monkeypatch.setattr(bulk_load, "FLUSH", 40)
    monkeypatch.setattr(bulk, "MAX_WAITING", 30)
    monkeypatch.setattr(bulk, "BULK_MIN", 10)


def _tx(rng: random.Random) -> str:
    return "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(64))


def _row(rng: random.Random, protocol: str, when: datetime, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "protocol": protocol,
        "chain": rng.choice(["ethereum", "bsc", "arbitrum", "Polygon", "solana", "other", None]),
        "category": rng.choice(["flash loan", "reentrancy", "price oracle manipulation", "other", None]),
        "amount_usd": rng.choice([None, round(rng.lognormvariate(12, 2), 2)]),
        "recovered_usd": rng.choice([None, None, 1000.0]),
        "timestamp": when.isoformat().replace("+00:00", "Z") if rng.random() < 0.8 else when.date().isoformat(),
        "tx_hash": rng.choice([None, _tx(rng)]),
        "description": rng.choice([f"{protocol} was drained with a flashloan", "other", None]),
        "attacker_address": rng.choice([None, "0x" + "ab" * 20]),
        "source": rng.choice(SOURCES),
    }
    row.update(extra)
    return {k: v for k, v in row.items() if v is not None}


def _rows(seeded: list[tuple[str, str | None, datetime]], *, corrections: bool = True) -> list[dict[str, Any]]:
    """Lone incidents, and every way a row can meet another: same tx hash, the fuzzy rule, the same
    (source, reference) again with other facts, a seeded incident by tx hash or by name and date, rows of
    the "import" source, test rows, recent rows (events with --notify), near misses just outside the window.

    Reports that end up in one incident come from sources of different trust (or state the same facts):
    `derive` breaks ties in trust by the order its SELECT returns reports in, which on PostgreSQL is the
    physical order of the rows, and that differs between any two ways of writing them."""
    rng = random.Random(3)
    start = NOW - timedelta(days=900)

    def when(days: float) -> datetime:
        return (start + timedelta(days=days)).replace(microsecond=0)

    def name(i: int) -> str:
        return f"{WORDS[i % 10]}{WORDS[i // 10 % 10].lower()}{i} {rng.choice(['Finance', 'Swap', 'Lend', ''])}".strip()

    high, low = {"source": "defihack_chronicle"}, {"source": "community"}
    rows = [_row(rng, name(i), when(i * 1.7)) for i in range(300)]
    for i in range(300, 340):  # pairs on one tx hash
        tx = _tx(rng)
        rows += [
            _row(rng, name(i), when(i), tx_hash=tx, **high),
            _row(rng, name(i) + " v2", when(i + 0.5), tx_hash=tx, **low),
        ]
    for i in range(340, 380):  # fuzzy pairs: other spelling, within 3 days, no tx hash on the second (rows of an
        # import are exploits: they stay apart)
        rows.append(_row(rng, name(i), when(i), amount_usd=1e6, **low))
        rows.append(_row(rng, name(i).upper() + " Protocol", when(i + 2), amount_usd=2e6, tx_hash=None, **high))
    for i in range(380, 400):  # near misses, 3.1 days apart
        rows += [_row(rng, name(i), when(i), **high), _row(rng, name(i), when(i + 3.1), **low)]
    for i in range(400, 420):  # one (source, reference) twice, the second with other facts
        first = _row(rng, name(i), when(i), source="rekt", tx_hash=_tx(rng))
        rows += [first, dict(first, amount_usd=123.0, description="corrected")] if corrections else [first]
    for protocol, tx, at in seeded[:20]:  # seeded incidents (defihacklabs): by tx hash
        rows.append(_row(rng, protocol, at, tx_hash=tx, source="rekt"))
    for protocol, _, at in seeded[20:40]:  # seeded incidents: by name and date
        rows.append(_row(rng, protocol + " Finance", at + timedelta(days=1), source="slowmist", amount_usd=None))
    for i in range(440, 470):  # the "import" source (no source field): tx hash only
        rows.append({k: v for k, v in _row(rng, name(i), when(i)).items() if k != "source"})
    rows += [_row(rng, "Test", when(500 + 5 * i)) for i in range(10)]
    rows += [_row(rng, name(i), NOW - timedelta(hours=i - 479)) for i in range(480, 500)]
    two = [{"source": "rekt", "url": "https://rekt.news/x"}, "defillama"]  # one row, two reports
    rows.append(_row(rng, name(501), when(501), sources=two))
    rng.shuffle(rows)
    return rows


def _reports(rows: list[dict[str, Any]]) -> list[Report]:
    reports = []
    for row in rows:
        with contextlib.suppress(RowError):  # e.g. an EVM hash on solana: skipped, as `kamiyo import` does
            reports += row_to_reports(row)
    return reports


async def _seeded(url: str) -> list[tuple[str, str | None, datetime]]:
    db = Database(url)
    async with db.session() as session:
        found = await session.execute(
            select(Exploit.protocol, Exploit.tx_hash, Exploit.timestamp).where(Exploit.tx_hash.is_not(None)).limit(40)
        )
        seeded = [tuple(r) for r in found]
    await db.dispose()
    return seeded  # type: ignore[return-value]


async def _copy_db(url: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A second copy of the seeded database of `db_url`."""
    if backend == "sqlite":
        other = tmp_path / "copy.db"
        shutil.copyfile(url.removeprefix("sqlite:///"), other)
        return f"sqlite:///{other}"
    admin = request.getfixturevalue("postgres_admin")
    name = f"kamiyo_copy_{tmp_path.name[-20:].replace('-', '_')}"
    template = request.getfixturevalue("postgres_template")
    await asyncio.to_thread(psql, admin, f"CREATE DATABASE {name} TEMPLATE {template}")
    return f"{admin}/{name}"


async def _snapshot(url: str) -> dict[str, Any]:
    """Everything an import writes, by content: exploits keyed by their reports' (source, reference)."""
    db = Database(url)
    async with db.session() as session:
        owner: dict[int, list[tuple[str, str]]] = {}
        for exploit_id, source, ref in await session.execute(
            select(ReportRow.exploit_id, ReportRow.source, ReportRow.source_ref)
        ):
            owner.setdefault(exploit_id, []).append((source, ref))
        key = {i: tuple(sorted(refs)) for i, refs in owner.items()}
        exploits = {key[r.id]: _without(r._mapping, "id") for r in await session.execute(select(Exploit.__table__))}
        reports = {
            (r.source, r.source_ref): _without(r._mapping, "id", "exploit_id") | {"of": key[r.exploit_id]}
            for r in await session.execute(select(ReportRow.__table__))
        }
        merge_keys = sorted(
            (key[m.exploit_id], m.key, m.ts, m.amount) for m in await session.execute(select(MergeKey.__table__))
        )
        chain = {
            (r.day, r.chain): (r.count, pytest.approx(r.loss_usd), pytest.approx(r.recovered_usd), r.last_at)
            for r in (await session.execute(select(DailyChainStat))).scalars()
        }
        category = {
            (r.day, r.category): (r.count, pytest.approx(r.loss_usd), pytest.approx(r.recovered_usd))
            for r in (await session.execute(select(DailyCategoryStat))).scalars()
        }
        events = Counter(
            (e.type, key[e.exploit_id], str(e.changes)) for e in (await session.execute(select(ExploitEvent))).scalars()
        )
        dialect = session.get_bind().dialect.name
        search = {}
        for word in ["flashloan", "drained", "corrected", *WORDS[:4]]:
            found = await session.execute(select(Exploit.id).where(search_condition(word, dialect)))
            search[word] = sorted(key[i] for i in found.scalars())
        version = (await session.execute(select(Meta.value).where(Meta.key == "data_version"))).scalar_one()
    await db.dispose()
    return {
        "exploits": exploits,
        "reports": reports,
        "merge_keys": merge_keys,
        "chain": chain,
        "category": category,
        "events": events,
        "search": search,
        "version": version,
    }


def _without(mapping: Any, *names: str) -> dict[str, Any]:
    return {k: v for k, v in dict(mapping).items() if k not in names}


async def _store(url: str, reports: list[Report], *, bulk_path: bool) -> store.StoreResult:
    db = Database(url)
    try:
        async with db.session() as session:
            if bulk_path:
                return await bulk.bulk_store(session, reports, notify_since=NOW - timedelta(days=7), now=NOW)
            return await store.store_reports(session, reports, notify_since=NOW - timedelta(days=7), now=NOW)
    finally:
        await db.dispose()


def _same(slow: dict[str, Any], fast: dict[str, Any]) -> None:
    for part in ("exploits", "reports", "merge_keys", "chain", "category", "events", "search"):
        assert fast[part] == slow[part], part


async def test_bulk_path_stores_what_store_reports_stores(
    db_url: str,
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    small_batches: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = await _copy_db(db_url, backend, request, tmp_path)
    reports = _reports(_rows(await _seeded(db_url)))
    merged: list[int] = []

    async def counting(session: Any, batch: list[Report], **kw: Any) -> store.StoreResult:
        merged.append(len(batch))
        return await store.store_reports(session, batch, **kw)

    monkeypatch.setattr(bulk, "store_reports", counting)
    slow = await _store(db_url, reports, bulk_path=False)
    fast = await _store(other, reports, bulk_path=True)
    assert (len(fast.created), fast.reports_new, fast.events) == (len(slow.created), slow.reports_new, slow.events)
    assert fast.events > 0 and len(fast.created) > 300
    assert 0 < sum(merged) < len(reports) / 2 and max(merged) <= 50  # most rows took the fast path, in batches
    before, after = await _snapshot(db_url), await _snapshot(other)
    _same(before, after)
    merged_into_seeded = [k for k in after["exploits"] if len(k) > 1 and k[0][0] == "defihacklabs"]
    merged_in_file = [k for k in after["exploits"] if len(k) > 1 and k[0][0] != "defihacklabs"]
    assert len(merged_into_seeded) >= 20 and len(merged_in_file) >= 20


def _lone(rng: random.Random, n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [_row(rng, f"Lone{i + offset}{WORDS[i % 10]}", NOW - timedelta(days=40 + 9 * i)) for i in range(n)]


async def test_a_report_that_moves_an_incident_is_seen_under_all_its_names(
    empty_db_url: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path, small_batches: None
) -> None:
    """E is stored under two names; the file first moves E's time by a more trusted report on its tx hash,
    then brings a row of the other name near the new time only: both paths store the same (an imported row
    joins by tx hash only, so the mover joins E and the joiner stays its own incident)."""
    tx, t0 = "0x" + "7e" * 32, NOW - timedelta(days=2000, hours=3)

    def row(protocol: str, at: datetime, source: str, **extra: Any) -> dict[str, Any]:
        stamp = at.isoformat().replace("+00:00", "Z")
        return {"protocol": protocol, "timestamp": stamp, "chain": "ethereum", "source": source, **extra}

    seed = _reports([row("Alphaville", t0, "rekt", tx_hash=tx), row("Betamax Swap", t0, "slowmist", tx_hash=tx)])
    for url in (empty_db_url, other := await _copy_db_empty(empty_db_url, backend, request, tmp_path)):
        await _store(url, seed, bulk_path=False)
    rng = random.Random(5)
    mover = row("Betamax", t0 + timedelta(days=10), "defihacklabs", tx_hash=tx)
    joiner = row("Alphaville Finance", t0 + timedelta(days=11), "peckshield")
    reports = _reports([*_lone(rng, 120), mover, *_lone(rng, 120, 200), joiner, *_lone(rng, 60, 400)])
    await _store(empty_db_url, reports, bulk_path=False)
    await _store(other, reports, bulk_path=True)
    slow, fast = await _snapshot(empty_db_url), await _snapshot(other)
    _same(slow, fast)
    assert [k for k in fast["exploits"] if len(k) == 3]  # E: its two reports and the mover
    assert [k for k in fast["exploits"] if k[0][0] == "peckshield"]  # the joiner, apart


async def _copy_db_empty(url: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return await _copy_db(url, backend, request, tmp_path)
    from kamiyo import migrations

    admin = request.getfixturevalue("postgres_admin")
    name = f"kamiyo_empty_{tmp_path.name[-20:].replace('-', '_')}"
    await asyncio.to_thread(psql, admin, f"CREATE DATABASE {name}")
    await asyncio.to_thread(migrations.upgrade, f"{admin}/{name}")
    return f"{admin}/{name}"


async def test_importing_the_same_rows_again_changes_nothing(db_url: str, small_batches: None) -> None:
    """(A file that states one (source, reference) twice with other facts flips it on every import, as
    store_reports does: the last one wins each time.)"""
    reports = _reports(_rows(await _seeded(db_url), corrections=False))
    db = Database(db_url)
    first = await bulk.import_reports(db, reports, notify_since=None)
    before = await _snapshot(db_url)
    again = await bulk.import_reports(db, reports, notify_since=None)
    await db.dispose()
    assert first.reports_new > 500 and len(first.created) > 300 and first.events == 0
    assert (again.reports_new, again.reports_changed, again.created, again.events) == (0, 0, [], 0)
    assert again.reports_unchanged == len({(r.source, r.source_ref) for r in reports})
    after = await _snapshot(db_url)
    _same(before, after)
    assert after["version"] == before["version"]


async def test_bulk_loaded_rows_are_searchable(empty_db_url: str, backend: str, small_batches: None) -> None:
    rng = random.Random(9)
    rows = _lone(rng, 200)
    rows[17].update(description="Drained through a zorblaxian callback", chain="bsc")
    reports = _reports(rows)
    db = Database(empty_db_url)
    await bulk.import_reports(db, reports, notify_since=None)
    async with db.session() as session:
        found = await session.execute(select(Exploit.protocol).where(search_condition("zorblax", backend)))
        protocols = list(found.scalars())
        count = select(func.count()).select_from(Exploit).where(search_condition("flashloan", backend))
        flashloan = (await session.execute(count)).scalar_one()
        if backend == "sqlite":  # the FTS index holds exactly the rows of its content table
            await session.execute(text("INSERT INTO exploits_fts(exploits_fts, rank) VALUES ('integrity-check', 1)"))
    await db.dispose()
    assert protocols == [rows[17]["protocol"]]
    assert flashloan == sum("flashloan" in (r.description or "") for r in reports) > 0


def _schema(path: str) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return sorted(conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())


async def _counts(url: str) -> tuple[int, int, int]:
    db = Database(url)
    async with db.session() as session:
        counts = [
            (await session.execute(select(func.count()).select_from(t))).scalar_one()
            for t in (Exploit, ReportRow, MergeKey)
        ]
    await db.dispose()
    return counts[0], counts[1], counts[2]


async def test_an_import_that_fails_half_way_leaves_nothing_behind(
    db_url: str, backend: str, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After indexes and the FTS trigger went down and rows went in, an error: all of it is rolled back."""
    monkeypatch.setattr(bulk_load, "FLUSH", 300)  # a quarter of what the seeded table will then hold
    drops: list[bool] = []
    load = bulk_load._load
    monkeypatch.setattr(bulk_load, "_load", lambda conn, **kw: drops.append(kw["down"]) or load(conn, **kw))
    reports = _reports(_lone(random.Random(4), 420))
    schema = _schema(db_url.removeprefix("sqlite:///")) if backend == "sqlite" else []
    before = await _counts(db_url)

    def failing() -> Iterator[Report]:
        yield from reports[:350]
        raise OSError("disk went away")

    db = Database(db_url)
    with pytest.raises(OSError, match="disk went away"):
        await bulk.import_reports(db, failing(), notify_since=None)
    await db.dispose()
    assert await _counts(db_url) == before
    if backend == "sqlite":
        assert any(drops) and _schema(db_url.removeprefix("sqlite:///")) == schema


def _journal_mode(path: str) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


async def test_a_bulk_import_alone_on_sqlite_writes_through_a_rollback_journal(
    empty_db_url: str, backend: str, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In WAL mode every page of the one-transaction import would be written twice (WAL, then checkpoint);
    alone with the database the import uses a rollback journal and switches back to WAL after. With another
    connection open it keeps WAL (that connection reads on, and sees the import once committed)."""
    if backend != "sqlite":
        pytest.skip("SQLite's journal")
    path = empty_db_url.removeprefix("sqlite:///")
    modes: list[str] = []
    real = bulk.bulk_store

    async def noting_the_mode(session: Any, *args: Any, **kwargs: Any) -> Any:
        modes.append(str((await session.execute(text("PRAGMA journal_mode"))).scalar()))
        return await real(session, *args, **kwargs)

    monkeypatch.setattr(bulk, "bulk_store", noting_the_mode)
    rng = random.Random(4)
    db = Database(empty_db_url)
    await bulk.import_reports(db, _reports(_lone(rng, 200)), notify_since=None)
    await db.dispose()
    assert modes == ["delete"] and _journal_mode(path) == "wal" and not Path(path + "-journal").exists()

    with contextlib.closing(sqlite3.connect(path, timeout=5)) as reader:
        assert reader.execute("SELECT count(*) FROM exploits").fetchone()[0] > 150  # the file is open
        db = Database(empty_db_url)
        await bulk.import_reports(db, _reports(_lone(rng, 200, offset=1_000)), notify_since=None)
        await db.dispose()
        (seen,) = reader.execute("SELECT count(*) FROM exploits").fetchone()
    with contextlib.closing(sqlite3.connect(path)) as fresh:
        assert seen == fresh.execute("SELECT count(*) FROM exploits").fetchone()[0] > 200
    assert modes == ["delete", "wal"] and _journal_mode(path) == "wal"


KILLED_IMPORT = """
import asyncio, os, signal, sys
from pathlib import Path
from kamiyo.db import Database
from kamiyo.ingest import bulk, bulk_load, store
from kamiyo.ingest.importer import ImportProblems, iter_reports
store.BATCH, bulk_load.FLUSH, bulk.BULK_MIN = 50, 300, 10
load = bulk_load._load
def killing(conn, **kw):
    load(conn, **kw)
    if kw["down"]:  # indexes and trigger down, rows in, transaction open
        os.kill(os.getpid(), signal.SIGKILL)
bulk_load._load = killing
reports = iter_reports(Path(sys.argv[2]), ImportProblems())
asyncio.run(bulk.import_reports(Database(sys.argv[1]), reports, notify_since=None))
"""


def test_a_killed_import_leaves_the_schema_and_data_as_they_were(db_url: str, backend: str, tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL's path drops nothing; a killed session's transaction is rolled back by the server")
    path = db_url.removeprefix("sqlite:///")
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b"\n".join(orjson.dumps(r) for r in _lone(random.Random(6), 420)))
    schema, before = _schema(path), asyncio.run(_counts(db_url))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_IMPORT, db_url, str(src)], capture_output=True, timeout=120, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _schema(path) == schema and asyncio.run(_counts(db_url)) == before
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_lone_facts_are_what_derive_makes_of_one_report() -> None:
    rng = random.Random(8)
    cases = [
        Report(
            source="x",
            source_ref="1",
            protocol="Test",
            timestamp=NOW,
            chain="other",
            category="other",
            description="other",
            amount_text="other",
            attacker_address="other",
        ),
        Report(
            source="x",
            source_ref="2",
            protocol="Acme",
            timestamp=NOW.replace(hour=0, minute=0, second=0),
            tx_hash="",
            amount_usd=5,
            recovered_usd=2.5,
        ),
        Report(
            source="x",
            source_ref="3",
            protocol=" Acme  Lend ",
            timestamp=NOW,
            chain="ethereum",
            tx_hash="0x" + "1" * 64,
            description="",
        ),
        Report(source="x", source_ref="4", protocol="Acme", timestamp=NOW, chain=None, category=None),
    ]
    cases += _reports(_lone(rng, 200))
    for report in cases:
        facts = bulk_load.lone_facts(report, NOW)
        assert {k: facts[k] for k in derive([report])} == derive([report])
        assert type(facts["amount_usd"]) is type(derive([report])["amount_usd"])


def test_sqlite_time_is_what_the_orm_stores() -> None:
    dialect = sqlite_dialect.dialect()
    stored = cast(Table, Exploit.__table__).c.timestamp.type.dialect_impl(dialect).bind_processor(dialect)
    assert stored is not None
    zone = timezone(timedelta(hours=-7))
    for value in (
        NOW,
        NOW.replace(microsecond=123),
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 0, tzinfo=zone),
        datetime(2020, 1, 1),
    ):
        assert bulk_load.sqlite_time(value) == stored(value)


def test_the_loader_writes_every_column() -> None:
    def names(model: Any, *skip: str) -> tuple[str, ...]:
        return tuple(c.name for c in cast(Table, model.__table__).c if c.name not in skip)

    assert names(Exploit) == bulk_load.EXPLOIT_COLUMNS
    assert names(ReportRow, "id") == bulk_load.REPORT_COLUMNS
    assert names(MergeKey) == bulk_load.KEY_COLUMNS
    assert names(ExploitEvent, "id", "dispatched_at") == bulk_load.EVENT_COLUMNS


def test_large_jsonl_import_takes_the_bulk_path_end_to_end(tmp_path: Path) -> None:
    """Above BULK_MIN reports through the console script: counts, skipped rows, then nothing new."""
    rng = random.Random(11)
    rows = [_row(rng, f"Bulk{i}{WORDS[i % 10]}", NOW - timedelta(days=3 + i / 20), tx_hash=None) for i in range(20_500)]
    lines = [orjson.dumps(r) for r in rows]
    lines[9] = b'{"protocol": "", "timestamp": "2024-01-01"}'
    lines[20_000] = b"[1, 2]"
    src = tmp_path / "big.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    db = tmp_path / "k.db"
    first = kamiyo(db, "import", str(src))
    assert first.returncode == 0, first.stderr
    assert "20498 new exploits, 20498 new reports, 0 unchanged, 2 skipped" in first.stderr
    assert "row 10: protocol: required" in first.stderr and "row 20001: not a JSON object" in first.stderr
    again = kamiyo(db, "import", str(src))
    assert "0 new exploits, 0 new reports, 20498 unchanged, 2 skipped" in again.stderr
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM exploits_fts WHERE exploits_fts MATCH 'flashloan'").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'exploits_fts_ai'").fetchone() == (1,)
