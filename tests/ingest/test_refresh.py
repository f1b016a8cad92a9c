"""A database made before the record rules upgrades in place: every report kept, every record re-derived."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, func, select, text, update

from kamiyo import migrations
from kamiyo.db import Database
from kamiyo.enrich.refresh import CACHE_PREFIX
from kamiyo.exploits.models import Exploit, Meta, ReportRow
from kamiyo.ingest.health import save_validators
from kamiyo.ingest.models import SourceHttpCache
from kamiyo.ingest.refresh import RECORDS_VERSION, refresh_records

BEC = "src/test/2018-04/BEC_exp.sol"


async def _state(url: str) -> tuple[int, int, dict[str, object]]:
    db = Database(url)
    async with db.session() as session:
        reports = (await session.execute(select(func.count()).select_from(ReportRow))).scalar_one()
        exploits = (await session.execute(select(func.count()).select_from(Exploit))).scalar_one()
        bec = (
            await session.execute(
                select(Exploit.loss_kind, Exploit.corrections, Exploit.amount_usd)
                .join(ReportRow, ReportRow.exploit_id == Exploit.id)
                .where(ReportRow.source_ref == BEC)
            )
        ).one()
    await db.dispose()
    return reports, exploits, {"loss_kind": bec[0], "corrected": [c["field"] for c in bec[1]], "amount": bec[2]}


async def test_an_older_database_upgrades_in_place_and_is_re_derived(db_url: str) -> None:
    reports, exploits, bec = await _state(db_url)
    assert bec["loss_kind"] == "nominal" and "loss_kind" in bec["corrected"]
    await asyncio.to_thread(
        migrations.downgrade, db_url, "covering"
    )  # the schema before the record rules, with its data
    db = Database(db_url)
    async with db.session() as session:
        await session.execute(text("UPDATE exploits SET amount_usd = amount_usd * 2 WHERE amount_usd > 0"))
        await session.execute(delete(Meta).where(Meta.key == RECORDS_VERSION))
    await db.dispose()
    await asyncio.to_thread(migrations.upgrade, db_url)
    db = Database(db_url)
    async with db.session() as session:
        changed = await refresh_records(session)
    async with db.session() as session:
        again = await refresh_records(session)
    await db.dispose()
    assert changed is not None and changed >= 500 and again is None  # once, then nothing to do
    assert await _state(db_url) == (reports, exploits, bec)


async def test_a_changed_curated_file_re_derives_on_the_next_refresh(db_url: str) -> None:
    db = Database(db_url)
    async with db.session() as session:
        await session.execute(update(Meta).where(Meta.key == RECORDS_VERSION).values(value=1))
        await session.execute(update(Exploit).values(loss_kind="realised", corrections=[]))
    async with db.session() as session:
        assert await refresh_records(session)
    await db.dispose()
    assert (await _state(db_url))[2]["loss_kind"] == "nominal"


async def test_after_a_rules_change_every_source_reads_its_feeds_in_full_once(db_url: str) -> None:
    """Stored reports gain what a newer parser reads: the sources' conditional-request validators are dropped
    (other feeds' caches are kept), and validators saved by runs after the refresh stay."""
    db = Database(db_url)
    async with db.session() as session:
        await save_validators(session, "defillama", {"https://api.llama.fi/hacks": {"etag": '"v1"'}})
        await save_validators(session, CACHE_PREFIX + "ofac", {"https://example.org/sdn": {"etag": '"l1"'}})
        await session.execute(update(Meta).where(Meta.key == RECORDS_VERSION).values(value=1))
    async with db.session() as session:
        assert await refresh_records(session) is not None
        await save_validators(session, "rekt", {"https://rekt.news/": {"etag": '"r1"'}})  # a run after the upgrade
    async with db.session() as session:
        assert await refresh_records(session) is None
        cached = set((await session.execute(select(SourceHttpCache.source))).scalars())
    await db.dispose()
    assert cached == {CACHE_PREFIX + "ofac", "rekt"}
