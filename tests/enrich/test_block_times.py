"""Incident times from blocks: a round of the on-chain job against local JSON-RPC nodes serving a synthetic
history of the bundled incidents (tests/enrich/synthetic_chain.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from kamiyo import migrations
from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.enrich.onchain import verify_pending
from kamiyo.exploits.evidence_models import BlockTime, OnchainCheck
from kamiyo.exploits.models import Exploit, Meta, ReportRow, is_public
from kamiyo.exploits.stats import refresh_days
from kamiyo.ingest.evidence import fork_block
from kamiyo.ingest.refresh import RECORDS_VERSION, refresh_records
from kamiyo.ingest.store import store_reports
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import Report
from kamiyo.vocabulary.taxonomy import CHAINS
from tests.enrich.rpc_server import ChainState, only
from tests.enrich.synthetic_chain import sender_of, serving, synthetic_chains
from tests.enrich.test_onchain import summaries
from tests.support.app import make_settings

EVM = [slug for slug, meta in CHAINS.items() if meta.family == "evm"]


def online(db_url: str, urls: dict[str, str]) -> Settings:
    return make_settings(db_url, KAMIYO_OFFLINE=False, KAMIYO_RPC_URLS=only(**urls))


async def records(database: Database) -> dict[int, Any]:
    """Every public record with a tx hash on an EVM chain."""
    async with database.session() as session:
        rows = await session.execute(
            select(Exploit).where(is_public(), Exploit.tx_hash.is_not(None), Exploit.chain.in_(EVM))
        )
        return {e.id: e for e in rows.scalars()}


def block_calls(states: dict[str, ChainState]) -> list[tuple[str, int]]:
    return [(chain, int(p[0], 16)) for chain, s in states.items() for m, p in s.calls if m == "eth_getBlockByNumber"]


def corrected_time(exploit: Any) -> bool:
    return any(c["field"] == "timestamp" for c in exploit.corrections)


async def test_a_round_times_every_bundled_evm_incident_with_a_tx_hash_by_its_block(
    db_url: str, database: Database
) -> None:
    before = await records(database)
    assert len(before) > 700 and all(e.time_precision == "day" for e in before.values())
    states = await synthetic_chains(database)
    first, second = sorted(states["ethereum"].txs)[:2]  # two attacks in one block: one request
    states["ethereum"].txs[second] = (states["ethereum"].txs[first][0], *states["ethereum"].txs[second][1:])
    async with serving(states) as urls:
        outcome = await verify_pending(database, online(db_url, urls), limit=5000)
        asked = block_calls(states)
        after = await records(database)
        for state in states.values():
            state.calls.clear()
        forgotten = sorted(before)[::8]
        async with database.session() as session:  # forget some tx look-ups: their blocks stay cached
            await session.execute(delete(OnchainCheck).where(OnchainCheck.exploit_id.in_(forgotten)))
            await session.execute(update(Exploit).where(Exploit.id.in_(forgotten)).values(verified_on_chain=False))
        again = await verify_pending(database, online(db_url, urls), limit=5000)
    assert outcome.by_status == {"verified": len(before)} and not outcome.skipped_chains
    mined = {(chain, block) for chain, s in states.items() for block, *_ in s.txs.values()}
    assert len(asked) == len(set(asked)) == len(mined) == outcome.blocks_fetched  # one request per distinct block
    assert set(asked) == mined and len(mined) < len(before)
    timed = {i for i, e in after.items() if e.time_precision == "block"}
    shared = Counter(e.tx_hash for e in after.values())  # the bundled data gives two pairs of records one tx
    kept = {i for i, e in after.items() if corrected_time(e)}  # a curated time still wins
    assert timed == set(after) - kept and timed and all(after[i].time_precision == "day" for i in kept)
    for exploit in after.values():
        node = states[exploit.chain]
        block = node.txs[exploit.tx_hash][0]
        if exploit.id in timed:
            assert exploit.timestamp == datetime.fromtimestamp(node.block_times[block], UTC)
            if shared[exploit.tx_hash] == 1 and exploit.tx_hash != second:  # mined on its stated day
                assert exploit.timestamp.date() == before[exploit.id].timestamp.date()
            assert exploit.attacker_address in (before[exploit.id].attacker_address, sender_of(exploit.tx_hash))
    facts = ("timestamp", "time_precision", "attacker_address")
    moved = [i for i, e in after.items() if any(getattr(e, f) != getattr(before[i], f) for f in facts)]
    assert outcome.updated == len(moved) >= len(timed)
    assert again.by_status == {"verified": len(forgotten)} and again.blocks_fetched == 0 and again.updated == 0
    assert block_calls(states) == []  # the second round asks for no block
    assert {i for i, e in (await records(database)).items() if e.time_precision == "block"} == timed
    async with database.session() as session:
        assert len(list((await session.execute(select(BlockTime))).scalars())) == len(mined)
    stored = await summaries(database)
    async with database.session() as session:
        await refresh_days(session)  # the ground truth, recomputed from every exploit
    assert await summaries(database) == stored
    async with database.session() as session:  # re-deriving everything (a rules upgrade) keeps the block times
        await refresh_records(session, force=True)
    assert {i for i, e in (await records(database)).items() if e.time_precision == "block"} == timed


async def test_the_pocs_fork_block_times_an_incident_whose_tx_cannot_be_looked_up(
    db_url: str, database: Database
) -> None:
    async with database.session() as session:
        rows = await session.execute(
            select(Exploit.id, Exploit.tx_hash, Exploit.timestamp, Exploit.corrections, ReportRow.details)
            .join(ReportRow, ReportRow.exploit_id == Exploit.id)
            .where(Exploit.chain == "ethereum", Exploit.tx_hash.is_not(None), is_public())
            .order_by(Exploit.id)
        )
        forked = [r for r in rows if (f := fork_block(r.details)) and f[0] == "ethereum" and not r.corrections]
    near, far = forked[0], forked[1]
    states = {"ethereum": (await synthetic_chains(database))["ethereum"]}
    node = states["ethereum"]
    for row, offset in ((near, timedelta(hours=7)), (far, timedelta(days=40))):
        del node.txs[row.tx_hash]  # unknown to the node
        node.block_times[fork_block(row.details)[1] + 1] = int((row.timestamp + offset).timestamp())
    async with serving(states) as urls:
        outcome = await verify_pending(database, online(db_url, urls), limit=5000)
    assert outcome.by_status["not_found"] == 2
    async with database.session() as session:
        timed, untimed = await session.get(Exploit, near.id), await session.get(Exploit, far.id)
        near_check = await session.get(OnchainCheck, near.id)
    assert timed is not None and untimed is not None and near_check is not None
    assert near_check.status == "not_found" and timed.verified_on_chain is False
    assert timed.timestamp == near.timestamp + timedelta(hours=7) and timed.time_precision == "block"
    # Forty days from the stated day: not the attack's block (a PoC forking earlier to set up state).
    assert untimed.timestamp == far.timestamp and untimed.time_precision == "day"
    forks_asked = {n for _, n in block_calls(states)} & {fork_block(r.details)[1] + 1 for r in (near, far)}
    assert len(forks_asked) == 2

    async with database.session() as session:  # a new report arriving later keeps the block time
        await store_reports(session, [Report(
            source="rekt", source_ref="rekt:late", protocol=timed.protocol, chain="ethereum",
            timestamp=timed.timestamp.replace(hour=0, minute=0, second=0) + timedelta(days=1),
            tx_hash=timed.tx_hash, description="A later write-up.",
        )], now=utcnow() + timedelta(seconds=1))  # fmt: skip
        late = await session.get(Exploit, near.id)
        sources = Counter(r.source for r in (await session.execute(select(ReportRow).where(
            ReportRow.exploit_id == near.id))).scalars())  # fmt: skip
    assert late is not None and sources["rekt"] == 1
    assert late.timestamp == near.timestamp + timedelta(hours=7) and late.time_precision == "block"


async def test_offline_no_node_is_asked_and_every_record_keeps_its_day(db_url: str, database: Database) -> None:
    states = await synthetic_chains(database)
    async with serving(states) as urls:
        offline = make_settings(db_url, KAMIYO_RPC_URLS=only(**urls))  # KAMIYO_OFFLINE, as tests default to
        outcome = await verify_pending(database, offline, limit=5000)
    assert outcome.disabled == "KAMIYO_OFFLINE is set"
    assert all(not s.calls for s in states.values())
    assert all(e.time_precision == "day" for e in (await records(database)).values())


async def test_an_older_database_keeps_its_verified_blocks_and_times_their_records(db_url: str) -> None:
    await asyncio.to_thread(migrations.downgrade, db_url, "enrich")  # before the block cache
    at = datetime(2022, 3, 15, 9, 30, 11, tzinfo=UTC)
    database = Database(db_url)
    async with database.session() as session:
        exploit = (
            (await session.execute(select(Exploit).where(Exploit.chain == "ethereum", Exploit.tx_hash.is_not(None))))
            .scalars()
            .first()
        )
        assert exploit is not None
        session.add(OnchainCheck(
            exploit_id=exploit.id, tx_hash=exploit.tx_hash, chain="ethereum", status="verified", attempts=1,
            checked_at=at, block_number=14_390_000, block_time=at,
        ))  # fmt: skip
        await session.execute(delete(Meta).where(Meta.key == RECORDS_VERSION))
    await asyncio.to_thread(migrations.upgrade, db_url)
    async with database.session() as session:
        assert await refresh_records(session)
    async with database.session() as session:
        cached = list((await session.execute(select(BlockTime))).scalars())
        timed = await session.get(Exploit, exploit.id)
    await database.dispose()
    assert [(b.chain, b.number, b.time) for b in cached] == [("ethereum", 14_390_000, at)]
    assert timed is not None and timed.timestamp == at and timed.time_precision == "block"


async def test_a_mined_transaction_whose_block_cannot_be_read_is_looked_at_again_soon(
    db_url: str, database: Database
) -> None:
    states = {"ethereum": (await synthetic_chains(database))["ethereum"]}
    lost, *_ = sorted(states["ethereum"].txs.items())
    del states["ethereum"].block_times[lost[1][0]]  # the node answers null for that block
    async with serving(states) as urls:
        outcome = await verify_pending(database, online(db_url, urls), limit=5000)
    async with database.session() as session:
        check = (await session.execute(select(OnchainCheck).where(OnchainCheck.tx_hash == lost[0]))).scalar_one()
        exploit = await session.get(Exploit, check.exploit_id)
    assert outcome.by_status["failed"] == 1 and check.status == "failed" and check.block_time is None
    assert check.error is not None and f"block {lost[1][0]}" in check.error
    assert check.next_check_at == check.checked_at + timedelta(minutes=10)
    assert exploit is not None and exploit.time_precision == "day" and exploit.verified_on_chain is False
