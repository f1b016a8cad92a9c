"""Report times: a source's own publication time, a list's fetch time when bounded, else unknown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from sqlalchemy import func, select

from kamiyo import migrations
from kamiyo.db import Database
from kamiyo.exploits.models import ReportRow
from kamiyo.ingest import bulk
from kamiyo.ingest.health import last_fetch_at, record_run
from kamiyo.ingest.importer import row_to_reports
from kamiyo.ingest.report_times import known_gap, stamp
from kamiyo.ingest.runner import IngestOptions, run_source
from kamiyo.ingest.store import store_reports
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources import REGISTRY
from kamiyo.sources.base import Document, Report
from kamiyo.sources.defihack_chronicle import parse_incident
from kamiyo.sources.http import FetchPolicy, new_client
from kamiyo.sources.rekt import parse_rss
from tests.sources.fixture_server import FIXTURES, fixture_server
from tests.support.services import http_server

FAST = FetchPolicy(timeout=2.0, retries=0)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class ListFeed:
    """A DeFiLlama-shaped list whose items a test changes between fetches."""

    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, day: str) -> None:
        date = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())
        self.items.append({"date": date, "name": name, "amount": 1e6, "chain": ["Ethereum"], "technique": "Hack"})


@pytest.fixture
def feed() -> Iterator[tuple[ListFeed, str]]:
    state = ListFeed()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps(state.items).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_server(Handler) as url:
        yield state, f"{url}/hacks"


async def _run(db: Database, name: str, url: str) -> tuple[datetime, datetime]:
    async with new_client() as client:
        before = utcnow()
        outcome = await run_source(
            db, REGISTRY[name], client, IngestOptions({name: url}, FAST), store_lock=asyncio.Lock()
        )
        after = utcnow()
    assert outcome.status == "ok", outcome.error
    return before, after


async def _times(db: Database, source: str) -> dict[str, datetime | None]:
    async with db.session() as session:
        rows = await session.execute(
            select(ReportRow.source_ref, ReportRow.reported_at).where(ReportRow.source == source)
        )
        return {ref: at for ref, at in rows}


async def test_the_bundled_seed_has_no_report_times(db_url: str) -> None:
    db = Database(db_url)
    async with db.session() as session:
        rows = (await session.execute(select(ReportRow.source, ReportRow.reported_at))).all()
        fetched = await last_fetch_at(session, "defihacklabs")
    await db.dispose()
    assert len(rows) > 500 and {source for source, _ in rows} == {"defihacklabs"}
    assert all(at is None for _, at in rows)
    assert fetched is None  # the seed's booked run is no fetch: the live source's first run is backfill


async def test_a_feed_keeps_each_item_publication_time(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    with fixture_server() as server:
        await _run(db, "rekt", server.url("rekt"))
        stored = await _times(db, "rekt")
    await db.dispose()
    feed = Document("feed.xml", 200, (FIXTURES / "rekt" / "feed.xml").read_bytes())
    stated = {r.source_ref: r.reported_at for r in parse_rss(feed)}
    assert stored and stored == stated and all(at is not None for at in stored.values())
    assert len(set(stored.values())) > 1  # each item its own time, not one ingestion stamp


async def test_a_list_is_backfill_first_then_timed_by_the_fetch_that_finds_an_item(
    empty_db_url: str, feed: tuple[ListFeed, str]
) -> None:
    state, url = feed
    state.add("Alpha", "2024-03-01")
    state.add("Beta", "2025-06-01")
    db = Database(empty_db_url)
    await _run(db, "defillama", url)
    first = await _times(db, "defillama")
    state.add("Gamma", "2026-11-01")
    before, after = await _run(db, "defillama", url)
    second = await _times(db, "defillama")
    await db.dispose()
    assert first == {"Alpha|2024-03-01": None, "Beta|2025-06-01": None}
    found = second.pop("Gamma|2026-11-01")
    assert found is not None and before <= found <= after
    assert second == first  # a stored report keeps its (unknown) time on later fetches


async def test_a_list_after_a_long_gap_is_backfill_again(empty_db_url: str, feed: tuple[ListFeed, str]) -> None:
    state, url = feed
    state.add("Alpha", "2024-03-01")
    db = Database(empty_db_url)
    async with db.session() as session:  # a fetch long ago, and the seed-like booking of a run that fetched nothing
        await record_run(session, "defillama", ok=True, latency_ms=5.0, at=utcnow() - timedelta(days=30))
        await record_run(session, "defillama", ok=True, at=utcnow() - timedelta(hours=1))
    await _run(db, "defillama", url)
    assert await _times(db, "defillama") == {"Alpha|2024-03-01": None}
    async with db.session() as session:
        latest = await last_fetch_at(session, "defillama")
    await db.dispose()
    assert latest is not None and utcnow() - latest < timedelta(minutes=1)


def _report(reported_at: datetime | None) -> Report:
    return Report(source="s", source_ref="r", protocol="P", timestamp=T0 - timedelta(days=3), reported_at=reported_at)


@pytest.mark.parametrize(
    ("stated", "previous", "expected"),
    [
        (T0 - timedelta(hours=2), None, T0 - timedelta(hours=2)),  # its own time, whatever the fetch history
        (T0 + timedelta(days=2), None, T0),  # a stated time after the fetch that found it is not believable
        (None, None, None),  # first fetch: backfill
        (None, T0 - timedelta(hours=30), T0),  # previous fetch within two cadences of a day
        (None, T0 - timedelta(hours=48), T0),
        (None, T0 - timedelta(hours=48, seconds=1), None),  # a gap too long to bound
    ],
)
def test_stamp_rules(stated: datetime | None, previous: datetime | None, expected: datetime | None) -> None:
    report = _report(stated)
    stamp([report], T0, previous, known_gap(86400))
    assert report.reported_at == expected


def test_known_gap_is_two_cadences_and_at_least_a_day() -> None:
    assert known_gap(18 * 3600) == timedelta(hours=36) and known_gap(600) == timedelta(days=1)


def test_the_chronicle_time_is_the_end_of_the_day_it_added_the_entry() -> None:
    name = "20171106-Parity.json"
    path = FIXTURES / "defihack_chronicle" / "hacks" / name
    report = parse_incident(Document(name, 200, path.read_bytes()), name)
    assert report.reported_at == datetime(2025, 1, 15, 23, 59, 59, tzinfo=UTC)
    undated = json.loads(path.read_bytes())
    undated.pop("metadata")
    assert parse_incident(Document(name, 200, json.dumps(undated).encode()), name).reported_at is None


async def test_the_migration_nulls_backfill_ingestion_stamps_and_keeps_real_times(db_url: str) -> None:
    """A database of an older version: every report without its own time was stamped with its `seen_at`."""
    first, later = utcnow() - timedelta(days=3), utcnow() - timedelta(days=2)
    published = T0 - timedelta(days=40)
    db = Database(db_url)
    async with db.session() as session:
        await store_reports(
            session,
            [
                Report("rekt", "post", "Alpha", T0 - timedelta(days=41), reported_at=published),
                Report("defillama", "Alpha|old", "Alpha", T0 - timedelta(days=41)),  # the list's first batch
            ],
            now=first,
        )
        # a later batch: what the old runner wrote for a list's new item (its fetch time)
        await store_reports(session, [Report("defillama", "Beta|new", "Beta", T0, reported_at=later)], now=later)
    await db.dispose()
    await asyncio.to_thread(migrations.downgrade, db_url, "confirm")  # back to the non-null column: stamps = seen_at
    db = Database(db_url)
    async with db.session() as session:
        stamped = (
            await session.execute(select(func.count()).where(ReportRow.reported_at == ReportRow.seen_at))
        ).scalar_one()
    await db.dispose()
    await asyncio.to_thread(migrations.upgrade, db_url)
    db = Database(db_url)
    seeded, lists, feeds = await _times(db, "defihacklabs"), await _times(db, "defillama"), await _times(db, "rekt")
    await db.dispose()
    assert stamped == len(seeded) + 2  # the seed, the list's first batch and its later one
    assert seeded and all(at is None for at in seeded.values())
    assert lists == {"Alpha|old": None, "Beta|new": later}
    assert feeds == {"post": published}


@pytest.mark.parametrize("bulk_path", [False, True])
async def test_an_import_keeps_the_times_its_file_states_and_null_stays_null(
    empty_db_url: str, bulk_path: bool
) -> None:
    row = {
        "protocol": "Imported",
        "timestamp": "2023-03-13T08:50:35Z",
        "chain": "ethereum",
        "sources": [
            {"source": "rekt", "ref": "imported-post", "reported_at": "2023-03-14T10:00:00Z"},
            {"source": "defillama", "ref": "Imported|2023-03-13"},
        ],
    }
    db = Database(empty_db_url)
    async with db.session() as session:
        reports = row_to_reports(row, incident="row:1")
        await (
            bulk.bulk_store(session, reports, notify_since=None, now=utcnow())
            if bulk_path
            else store_reports(session, reports)
        )
    rekt, llama = await _times(db, "rekt"), await _times(db, "defillama")
    await db.dispose()
    assert rekt == {"imported-post": datetime(2023, 3, 14, 10, 0, tzinfo=UTC)}
    assert llama == {"Imported|2023-03-13": None}
