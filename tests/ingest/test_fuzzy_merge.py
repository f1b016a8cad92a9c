"""Fuzzy merge in the one write path: same loose protocol key, ±3 days, compatible amounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from kamiyo.db import Database
from kamiyo.exploits.models import Exploit, ExploitEvent, ReportRow
from kamiyo.ingest.matching import same_incident
from kamiyo.ingest.models import MergeKey
from kamiyo.ingest.store import store_reports
from kamiyo.sources.base import Report
from kamiyo.vocabulary.normalise import amounts_compatible, protocol_match_key

NOW = datetime.now(UTC).replace(microsecond=0)
TX = "0x" + "ab" * 32


def _report(source: str, ref: str, protocol: str, days_ago: float = 1.0, **facts: object) -> Report:
    return Report(source=source, source_ref=ref, protocol=protocol, timestamp=NOW - timedelta(days=days_ago), **facts)  # type: ignore[arg-type]


async def _exploits(db: Database) -> list[tuple[int, str, float | None, list[str]]]:
    async with db.session() as session:
        rows = (await session.execute(select(Exploit).order_by(Exploit.id))).scalars().all()
        result = []
        for e in rows:
            sources = (await session.execute(select(ReportRow.source).where(ReportRow.exploit_id == e.id))).scalars()
            result.append((e.id, e.protocol, e.amount_usd, sorted(sources)))
    return result


def test_protocol_keys_and_amounts() -> None:
    assert protocol_match_key("CREAM Lending") == protocol_match_key("Cream Finance") == "cream"
    assert protocol_match_key("Bunny") == protocol_match_key("PancakeBunny") == "bunny"
    assert protocol_match_key("Harmony's Horizon Bridge") == protocol_match_key("Harmony Bridge")
    assert protocol_match_key("Rari Capital/Fei Protocol") == protocol_match_key("Rari Capital")
    assert protocol_match_key("Conic Finance 02") == protocol_match_key("Conic Finance")
    assert protocol_match_key("Uniswap") != protocol_match_key("Sushiswap")
    assert amounts_compatible(None, 5e6) and amounts_compatible(1e6, 4e6) and amounts_compatible(1e4, 2e5)
    assert not amounts_compatible(1e6, 20e6)
    day = NOW
    late = day - timedelta(days=3, seconds=1)
    assert not same_incident(("Acme", day, 1e6), ("Acme", late, 4e6))  # past 3 days the amounts must agree in 20%
    assert same_incident(("Acme", day, 1e6), ("Acme", late, 1.15e6))
    assert same_incident(("Acme", day, 1e6), ("Acme", day - timedelta(days=14), 1e6))
    assert not same_incident(("Acme", day, 1e6), ("Acme", day - timedelta(days=14, seconds=1), 1e6))
    assert same_incident(("Acme", day, 1e6), ("Acme", day - timedelta(hours=20), 50e6))  # a day: any amounts
    assert not same_incident(("Acme", day, 1e6), ("Acme", day - timedelta(days=2), 50e6))
    assert not same_incident(("Acme", day, 1e6), ("Acme", day, 1e6), same_source=True)


async def test_reports_of_one_incident_without_tx_merge_across_sources(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(session, [_report("defihacklabs", "d1", "Cream Finance", 2, amount_usd=18e6, tx_hash=TX)])
    async with db.session() as session:
        second = await store_reports(session, [_report("defillama", "l1", "CREAM Lending", 1, amount_usd=18.8e6)])
    exploits = await _exploits(db)
    await db.dispose()
    assert second.created == [] and len(exploits) == 1
    assert exploits[0][3] == ["defihacklabs", "defillama"]


async def test_far_dates_big_amount_gaps_and_other_names_stay_apart(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(session, [_report("defihacklabs", "d1", "Acme Lend", 10, amount_usd=1e6)])
    async with db.session() as session:
        await store_reports(
            session,
            [
                _report("defillama", "late", "Acme", 5.5, amount_usd=1.5e6),  # 4.5 days later, 50% more
                _report("slowmist", "big", "Acme Finance", 8, amount_usd=50e6),  # 2 days apart, 50x the loss
                _report("rekt", "other", "Acme Bridge Two", 10, amount_usd=1e6),  # another name
            ],
        )
    exploits = await _exploits(db)
    await db.dispose()
    assert len(exploits) == 4


async def test_a_source_never_lists_one_incident_twice(empty_db_url: str) -> None:
    """UwU Lend was drained twice in four days: DeFiLlama's two entries stay two incidents, and
    another source's report joins the closer one."""
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(
            session,
            [
                _report("defillama", "uwu-1", "UwU Lend", 4, amount_usd=20e6),
                _report("defillama", "uwu-2", "UwU Lend", 1, amount_usd=3.7e6),
            ],
        )
    async with db.session() as session:
        await store_reports(session, [_report("defihacklabs", "d", "UwULend", 4, amount_usd=19.3e6)])
    exploits = await _exploits(db)
    await db.dispose()
    assert [e[3] for e in exploits] == [["defihacklabs", "defillama"], ["defillama"]]


async def test_one_batch_groups_new_incidents_by_tx_and_by_name(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        result = await store_reports(
            session,
            [
                _report("rekt", "r", "Bunny", 1, amount_usd=45e6),
                _report("defillama", "l", "PancakeBunny", 1.5, amount_usd=45e6),
                _report("defihacklabs", "d", "Bunny Finance", 2, tx_hash=TX, tx_hashes=(TX,)),
                _report("slowmist", "s", "Other", 1, tx_hash=TX, tx_hashes=(TX,)),
            ],
        )
        keys = (await session.execute(select(MergeKey.key).distinct())).scalars().all()
    exploits = await _exploits(db)
    await db.dispose()
    assert len(result.created) == 1 and len(exploits) == 1
    assert exploits[0][3] == ["defihacklabs", "defillama", "rekt", "slowmist"]
    assert sorted(keys) == ["bunny", "other"]


async def test_new_recent_incident_alerts_and_a_later_report_changing_the_amount_updates_it(
    empty_db_url: str,
) -> None:
    db = Database(empty_db_url)
    window = NOW - timedelta(days=7)
    async with db.session() as session:
        created = await store_reports(session, [_report("rekt", "r", "Acme", 1, amount_usd=1e6)], notify_since=window)
    async with db.session() as session:
        updated = await store_reports(
            session, [_report("defillama", "l", "Acme Finance", 1, amount_usd=3e6)], notify_since=window
        )
        events = (await session.execute(select(ExploitEvent).order_by(ExploitEvent.id))).scalars().all()
        count = (await session.execute(select(func.count()).select_from(Exploit))).scalar_one()
    await db.dispose()
    assert created.events == 1 and updated.events == 1 and count == 1
    assert [e.type for e in events] == ["exploit.created", "exploit.updated"]
    assert events[1].changes == {"amount_usd": [1e6, 3e6]}  # DeFiLlama's figure outranks rekt's


async def test_merge_keys_follow_the_exploit(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(session, [_report("rekt", "r", "Acme", 1, amount_usd=1e6)])
    async with db.session() as session:
        await store_reports(session, [_report("rekt", "r", "Acme", 2, amount_usd=2e6)])  # the source corrected it
        rows = (await session.execute(select(MergeKey))).scalars().all()
    await db.dispose()
    assert [(r.key, r.amount, r.ts) for r in rows] == [("acme", 2e6, (NOW - timedelta(days=2)).timestamp())]
