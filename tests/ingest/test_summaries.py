"""Daily summaries kept by deltas equal a full recomputation, after inserts, merges, moves and test rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.exploits.models import DailyCategoryStat, DailyChainStat
from kamiyo.exploits.stats import refresh_days
from kamiyo.ingest.store import store_reports
from kamiyo.sources import defillama
from kamiyo.sources.base import Document, Report

LLAMA = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "defillama" / "hacks"
NOW = datetime.now(UTC).replace(microsecond=0)


async def _snapshot(db: Database) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    async with db.session() as session:
        chain = (
            await session.execute(select(DailyChainStat).order_by(DailyChainStat.day, DailyChainStat.chain))
        ).scalars()
        chains = [(r.day, r.chain, r.count, round(r.loss_usd, 2), round(r.recovered_usd, 2), r.last_at) for r in chain]
        category = (
            await session.execute(select(DailyCategoryStat).order_by(DailyCategoryStat.day, DailyCategoryStat.category))
        ).scalars()
        categories = [(r.day, r.category, r.count, round(r.loss_usd, 2), round(r.recovered_usd, 2)) for r in category]
    return chains, categories


async def test_summaries_by_delta_equal_a_full_recompute(db_url: str) -> None:
    """On the seeded data: the DeFiLlama snapshot (new incidents and merges), then corrections that move
    incidents to other days and chains, make one a test row, and change amounts."""
    llama = list(defillama.parse(Document(url="fixture", status=200, content=LLAMA.read_bytes())))
    db = Database(db_url)
    async with db.session() as session:
        await store_reports(session, llama)
    moved = [
        Report("rekt", "m1", "Mover", NOW - timedelta(days=3), chain="bsc", amount_usd=5e6, recovered_usd=1e6),
        Report("rekt", "m2", "Shaker", NOW - timedelta(days=3, hours=2), chain="bsc", amount_usd=2e6),
    ]
    async with db.session() as session:
        await store_reports(session, moved)
    corrected = [
        Report("rekt", "m1", "Mover", NOW - timedelta(days=9), chain="arbitrum", amount_usd=6e6),
        Report("rekt", "m2", "test", NOW - timedelta(days=3, hours=2), chain="bsc", amount_usd=2e6),
        *[Report(r.source, r.source_ref, r.protocol, r.timestamp, chain=r.chain, amount_usd=(r.amount_usd or 0) * 2)
          for r in llama[:50]],
    ]  # fmt: skip
    async with db.session() as session:
        await store_reports(session, corrected)
    by_delta = await _snapshot(db)
    async with db.session() as session:
        await refresh_days(session, None)
    recomputed = await _snapshot(db)
    await db.dispose()
    assert by_delta == recomputed
    assert any(row[1] == "arbitrum" and row[2] >= 1 for row in by_delta[0])
