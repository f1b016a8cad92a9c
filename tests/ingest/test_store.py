"""The one write path: reports merge by transaction hash, facts re-derive, events and stats follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from kamiyo.db import Database
from kamiyo.exploits.models import Exploit, ExploitEvent, ReportRow
from kamiyo.exploits.stats import compute_stats
from kamiyo.ingest.store import store_reports
from kamiyo.sources.base import Report

TX = "0x" + "1f" * 32
NOW = datetime.now(UTC).replace(microsecond=0)


def _report(source: str, ref: str, **facts: object) -> Report:
    values: dict[str, object] = {"protocol": "Acme Lend", "timestamp": NOW - timedelta(hours=2), "chain": "ethereum"}
    values.update(facts)
    return Report(source=source, source_ref=ref, **values)  # type: ignore[arg-type]


async def test_reports_with_one_tx_hash_become_one_exploit_keeping_each_report(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        first = await store_reports(session, [_report("rekt", "r1", tx_hash=TX, amount_usd=1e6)])
    async with db.session() as session:
        second = await store_reports(
            session,
            [_report("defihacklabs", "d1", tx_hash=TX, amount_usd=3e6, category="reentrancy")],
        )
        exploits = (await session.execute(select(Exploit))).scalars().all()
        sources = (await session.execute(select(ReportRow.source).order_by(ReportRow.id))).scalars().all()
    await db.dispose()
    assert len(first.created) == 1 and second.created == [] and second.updated == first.created
    assert len(exploits) == 1 and sources == ["rekt", "defihacklabs"]
    assert exploits[0].amount_usd == 3e6  # the most trusted source's figure for amounts, not a median
    assert exploits[0].category == "reentrancy"


async def test_storing_the_same_reports_twice_changes_nothing(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    batch = [_report("rekt", f"r{i}", protocol=f"P{i}", amount_usd=float(i)) for i in range(5)]
    async with db.session() as session:
        await store_reports(session, batch)
    async with db.session() as session:
        again = await store_reports(session, batch)
        count = (await session.execute(select(func.count()).select_from(Exploit))).scalar_one()
    await db.dispose()
    assert again.reports_unchanged == 5 and again.reports_new == 0 and again.created == [] and count == 5


async def test_recent_new_incident_emits_created_and_material_change_emits_updated(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    window = NOW - timedelta(days=7)
    async with db.session() as session:
        created = await store_reports(
            session,
            [
                _report("rekt", "new", tx_hash=TX, amount_usd=1e6),
                _report("rekt", "old", timestamp=NOW - timedelta(days=400)),
            ],
            notify_since=window,
        )
    async with db.session() as session:
        updated = await store_reports(
            session, [_report("rekt", "new", tx_hash=TX, amount_usd=5e6)], notify_since=window
        )
        unchanged_fact = await store_reports(
            session, [_report("rekt", "new", tx_hash=TX, amount_usd=5e6, description="more words")], notify_since=window
        )
        events = (await session.execute(select(ExploitEvent).order_by(ExploitEvent.id))).scalars().all()
    await db.dispose()
    assert created.events == 1 and updated.events == 1 and unchanged_fact.events == 0
    assert [e.type for e in events] == ["exploit.created", "exploit.updated"]
    assert events[1].changes == {"amount_usd": [1e6, 5e6]}


async def test_backfill_without_notify_is_silent(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        result = await store_reports(session, [_report("rekt", "x", tx_hash=TX)])
        events = (await session.execute(select(func.count()).select_from(ExploitEvent))).scalar_one()
    await db.dispose()
    assert result.created and result.events == 0 and events == 0


async def test_stats_summaries_follow_updates(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(session, [_report("rekt", "a", tx_hash=TX, amount_usd=1e6, chain="bsc")])
        before = await compute_stats(session, 7)
    async with db.session() as session:
        await store_reports(session, [_report("rekt", "a", tx_hash=TX, amount_usd=4e6, chain="arbitrum")])
        after = await compute_stats(session, 7)
    await db.dispose()
    assert before["by_chain"] == [{"chain": "bsc", "count": 1, "loss_usd": 1e6}]
    assert after["by_chain"] == [{"chain": "arbitrum", "count": 1, "loss_usd": 4e6}]
    assert after["total_loss_usd"] == 4e6 and after["total_exploits"] == 1
