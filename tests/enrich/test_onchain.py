"""On-chain verification against a local JSON-RPC node on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.enrich import evm_rpc, onchain
from kamiyo.enrich.onchain import verify_pending
from kamiyo.exploits.cache import DATA_VERSION
from kamiyo.exploits.evidence_models import OnchainCheck
from kamiyo.exploits.models import DailyCategoryStat, DailyChainStat, Meta, ReportRow
from kamiyo.exploits.stats import refresh_days
from kamiyo.ingest.store import store_reports
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import Report
from tests.enrich.rpc_server import ChainState, only, rpc_server
from tests.submissions.helpers import seeded
from tests.support.app import make_settings, running
from tests.support.cli import kamiyo

TARGET = "ExchangeIssuance (Index Coop)"  # ethereum, with a tx hash, stored at midnight, no attacker named
BLOCK = 20_436_811
BLOCK_TIME = datetime(2026, 7, 29, 23, 10, 5, tzinfo=UTC)  # the evening before the date the source gives
SENDER = "0x" + "a1" * 20
CONTRACT = "0x" + "b2" * 20


@pytest.fixture
def state() -> ChainState:
    return ChainState()


@pytest.fixture
async def rpc_url(state: ChainState) -> AsyncIterator[str]:
    async with rpc_server(state) as base:
        yield f"{base}/v3/SECRETKEY"  # providers put the API key in the path: it must never be shown


def settings(db_url: str, rpc_url: str | None) -> Settings:
    urls = only(ethereum=rpc_url) if rpc_url else only()
    return make_settings(db_url, KAMIYO_OFFLINE=False, KAMIYO_RPC_URLS=urls)


def mined(state: ChainState, tx_hash: str, *, status: int | None = 1, to: str | None = CONTRACT) -> None:
    state.txs[tx_hash] = (BLOCK, "0x" + "A1" * 20, to, status)  # a checksummed-case sender, as nodes answer
    state.block_times[BLOCK] = int(BLOCK_TIME.timestamp())


async def check_of(database: Database, exploit_id: int) -> OnchainCheck | None:
    async with database.session() as session:
        return await session.get(OnchainCheck, exploit_id)


async def summaries(database: Database) -> tuple[list[Any], list[Any]]:
    async with database.session() as session:
        chains = await session.execute(select(DailyChainStat).order_by(DailyChainStat.day, DailyChainStat.chain))
        cats = await session.execute(
            select(DailyCategoryStat).order_by(DailyCategoryStat.day, DailyCategoryStat.category)
        )
        return (
            [(r.day, r.chain, r.count, round(r.loss_usd, 2), r.last_at) for r in chains.scalars()],
            [(r.day, r.category, r.count, round(r.loss_usd, 2)) for r in cats.scalars()],
        )


async def data_version(database: Database) -> int:
    async with database.session() as session:
        return int((await session.execute(select(Meta.value).where(Meta.key == DATA_VERSION))).scalar_one())


async def test_a_mined_transaction_verifies_and_fixes_time_and_attacker(
    db_url: str, database: Database, state: ChainState, rpc_url: str
) -> None:
    target = await seeded(database, TARGET)
    mined(state, target["tx_hash"])
    version = await data_version(database)
    outcome = await verify_pending(database, settings(db_url, rpc_url), limit=50)
    assert outcome.by_status["verified"] == 1 and outcome.checked == 50 and not outcome.skipped_chains
    assert outcome.by_status["not_found"] == 49  # the fake node knows one transaction
    async with running(settings(db_url, rpc_url)) as (_, c):
        exploit = (await c.get(f"/exploits/{target['id']}")).json()
    assert exploit["verified_on_chain"] is True
    assert exploit["timestamp"] == "2026-07-29T23:10:05Z" and exploit["attacker_address"] == SENDER
    check = await check_of(database, target["id"])
    assert check is not None and check.status == "verified" and check.block_number == BLOCK
    assert check.to_address == CONTRACT and check.from_address == SENDER and check.next_check_at is None
    assert await data_version(database) > version
    stored = await summaries(database)
    async with database.session() as session:
        await refresh_days(session)  # the ground truth, recomputed from every exploit
    assert await summaries(database) == stored


async def test_known_outcomes_are_not_asked_again_until_due(
    db_url: str, database: Database, state: ChainState, rpc_url: str
) -> None:
    target = await seeded(database, TARGET)
    mined(state, target["tx_hash"])
    first = await verify_pending(database, settings(db_url, rpc_url), limit=5)
    assert first.checked == 5
    asked = {p[0] for m, p in state.calls if m == "eth_getTransactionByHash"}
    state.calls.clear()
    second = await verify_pending(database, settings(db_url, rpc_url), limit=5)
    again = {p[0] for m, p in state.calls if m == "eth_getTransactionByHash"}
    assert second.checked == 5 and not asked & again  # the next five, not the same ones
    unknown = next(iter(asked - {target["tx_hash"]}))
    async with database.session() as session:
        check = (await session.execute(select(OnchainCheck).where(OnchainCheck.tx_hash == unknown))).scalar_one()
    assert check.status == "not_found" and check.attempts == 1
    assert check.next_check_at is not None and check.next_check_at - check.checked_at == timedelta(days=1)


@pytest.mark.parametrize(("status", "expected"), [(0, "reverted"), (None, "verified")])
async def test_a_reverted_transaction_is_not_verified(
    db_url: str, database: Database, state: ChainState, rpc_url: str, status: int | None, expected: str
) -> None:
    target = await seeded(database, TARGET)
    mined(state, target["tx_hash"], status=status, to=None)  # None: a pre-Byzantium receipt has no status
    await verify_pending(database, settings(db_url, rpc_url), limit=50)
    check = await check_of(database, target["id"])
    assert check is not None and check.status == expected
    assert check.to_address == "0x" + "c0" * 20  # no `to`: the contract it created
    exploit = await seeded(database, TARGET)
    assert exploit["verified_on_chain"] is (expected == "verified")
    assert (exploit["timestamp"] == BLOCK_TIME) is (expected == "verified")


async def test_a_pending_transaction_is_looked_at_again_soon(
    db_url: str, database: Database, state: ChainState, rpc_url: str
) -> None:
    target = await seeded(database, TARGET)
    state.pending.add(target["tx_hash"])
    await verify_pending(database, settings(db_url, rpc_url), limit=50)
    check = await check_of(database, target["id"])
    assert check is not None and check.status == "pending" and check.next_check_at is not None
    assert check.next_check_at - check.checked_at == timedelta(minutes=10)
    assert (await seeded(database, TARGET))["verified_on_chain"] is False


@pytest.mark.parametrize("failure", ["http500", "rpc_error", "garbage", "slow"])
async def test_rpc_failures_are_recorded_without_the_url_and_retried(
    db_url: str,
    database: Database,
    state: ChainState,
    rpc_url: str,
    failure: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(onchain, "TIMEOUT_S", 0.3)
    caplog.set_level(logging.DEBUG)
    state.fail_with = failure
    outcome = await verify_pending(database, settings(db_url, rpc_url), limit=3)
    assert outcome.by_status == {"failed": 3}
    async with database.session() as session:
        checks = list((await session.execute(select(OnchainCheck))).scalars())
    assert len(checks) == 3 and all(c.status == "failed" and c.error for c in checks)
    words = {"http500": "HTTP 500", "rpc_error": "-32005", "garbage": "not JSON", "slow": "timed out"}[failure]
    assert all(words in (c.error or "") for c in checks)
    assert all(c.next_check_at == c.checked_at + timedelta(minutes=10) for c in checks)
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("kamiyo"))  # httpx's own are muted
    shown = " ".join(c.error or "" for c in checks) + ours
    assert "SECRETKEY" not in shown and "127.0.0.1" not in shown


async def test_an_endpoint_of_another_chain_is_skipped(
    db_url: str, database: Database, state: ChainState, rpc_url: str
) -> None:
    state.chain_id = 56  # a BNB Smart Chain node configured as ethereum
    outcome = await verify_pending(database, settings(db_url, rpc_url), limit=5)
    assert outcome.checked == 0 and "chain id 56" in outcome.skipped_chains["ethereum"]
    assert [m for m, _ in state.calls] == ["eth_chainId"]
    async with database.session() as session:
        assert list((await session.execute(select(OnchainCheck))).scalars()) == []


async def test_lookups_run_with_bounded_concurrency(
    db_url: str, database: Database, state: ChainState, rpc_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evm_rpc, "BATCH", 2)  # twenty batch requests
    state.delay = 0.05
    outcome = await verify_pending(database, settings(db_url, rpc_url), limit=40)
    assert outcome.checked == 40
    assert 1 < state.max_in_flight <= evm_rpc.CONCURRENCY


async def test_without_endpoints_or_when_offline_it_is_off(db_url: str, database: Database, rpc_url: str) -> None:
    assert (await verify_pending(database, settings(db_url, None))).disabled == "KAMIYO_RPC_URLS turns every chain off"
    offline = make_settings(db_url, KAMIYO_RPC_URLS=only(ethereum=rpc_url))
    assert (await verify_pending(database, offline)).disabled == "KAMIYO_OFFLINE is set"
    solana_only = make_settings(db_url, KAMIYO_OFFLINE=False, KAMIYO_RPC_URLS=only(solana="https://x.example"))
    assert (await verify_pending(database, solana_only)).disabled is not None
    with pytest.raises(ValueError, match="KAMIYO_RPC_URLS"):
        make_settings(db_url, KAMIYO_RPC_URLS='["https://x.example"]')


def test_every_evm_chain_has_a_keyless_public_default_that_the_setting_overrides(db_url: str) -> None:
    defaults = evm_rpc.evm_rpc_urls(make_settings(db_url))
    assert defaults["ethereum"] == "https://ethereum-rpc.publicnode.com" and "bsc" in defaults
    assert all(url.startswith("https://") and "key" not in url.lower() for url in defaults.values())
    assert "solana" not in defaults and len(defaults) >= 20
    overridden = make_settings(db_url, KAMIYO_RPC_URLS=json.dumps({"bsc": "http://127.0.0.1:1/", "ethereum": ""}))
    urls = evm_rpc.evm_rpc_urls(overridden)
    assert urls["bsc"] == "http://127.0.0.1:1/" and "ethereum" not in urls
    assert urls["polygon"] == defaults["polygon"]


def test_the_verify_command_runs_a_round_or_says_it_is_off(db_url: str) -> None:
    env = {"KAMIYO_DATABASE_URL": db_url, "KAMIYO_OFFLINE": "0"}
    off = kamiyo("verify", KAMIYO_RPC_URLS=only(), **env)
    assert off.returncode == 0 and "on-chain verification is off" in off.stderr
    # nothing listens on port 9
    down = kamiyo("verify", "--limit", "2", KAMIYO_RPC_URLS=only(ethereum="http://127.0.0.1:9/"), **env)
    assert down.returncode == 0 and "skipped ethereum" in down.stderr and "127.0.0.1:9" not in down.stderr


async def test_the_dashboard_and_api_show_the_verified_flag(
    db_url: str, database: Database, state: ChainState, rpc_url: str
) -> None:
    target, other = await seeded(database, TARGET), await seeded(database, "FlashstakeV2")
    mined(state, target["tx_hash"])
    await verify_pending(database, settings(db_url, rpc_url), limit=50)
    async with running(settings(db_url, rpc_url)) as (_, c):
        verified = (await c.get(f"/app/exploits/{target['id']}")).text
        plain = (await c.get(f"/app/exploits/{other['id']}")).text
        listed = (await c.get("/api/v1/exploits?page_size=500&chain=ethereum")).json()["data"]
        feed = ET.fromstring((await c.get("/feed.xml")).content)
    assert '<span class="status status-ok" title="Kamiyo found this transaction on chain' in verified
    assert "status status-ok" not in plain and "Not yet" in plain
    assert [e["id"] for e in listed if e["verified_on_chain"]] == [target["id"]]
    ns = {"a": "http://www.w3.org/2005/Atom"}
    verified_entries = [
        e.findtext("a:id", namespaces=ns)
        for e in feed.findall("a:entry", ns)
        if any(c.get("term") == "verified_on_chain" for c in e.findall("a:category", ns))
    ]
    assert verified_entries == [f"http://127.0.0.1:8000/exploits/{target['id']}"]  # KAMIYO_PUBLIC_URL, not the Host


async def test_block_facts_survive_a_re_derivation_and_a_changed_hash_is_checked_again(
    db_url: str, database: Database, state: ChainState, rpc_url: str
) -> None:
    target = await seeded(database, TARGET)
    mined(state, target["tx_hash"])
    config = settings(db_url, rpc_url)
    await verify_pending(database, config, limit=50)
    async with database.session() as session:  # another source reports the incident with its own time
        await store_reports(session, [Report(
            source="rekt", source_ref="rekt:index-coop", protocol="Index Coop", chain="ethereum",
            timestamp=datetime(2026, 7, 30, 12, 0, tzinfo=UTC), tx_hash=target["tx_hash"],
        )], now=utcnow() + timedelta(seconds=1))  # fmt: skip
    kept = await seeded(database, TARGET)  # re-derived from both reports and the stored block evidence
    assert kept["timestamp"] == BLOCK_TIME and kept["time_precision"] == "block"
    assert kept["attacker_address"] == SENDER and kept["verified_on_chain"]
    assert len(await reports_of(database, target["id"])) == 2

    new_hash = "0x" + "d4" * 32  # the trusted source corrects its hash
    async with database.session() as session:
        row = (
            await session.execute(
                select(ReportRow).where(ReportRow.exploit_id == target["id"], ReportRow.source != "rekt")
            )
        ).scalar_one()
        facts = {k: getattr(row, k) for k in ("source", "source_ref", "protocol", "timestamp", "chain", "url")}
        await store_reports(
            session,
            [replace(Report(**facts), tx_hash=new_hash, raw=row.raw)],
            now=utcnow() + timedelta(seconds=2),
        )
    moved = await seeded(database, TARGET)  # the block time was the old transaction's
    assert moved["time_precision"] == "day" and moved["timestamp"] != BLOCK_TIME
    outcome = await verify_pending(database, config, limit=1)
    assert outcome.reset == 1
    again = await seeded(database, TARGET)
    check = await check_of(database, target["id"])
    assert again["tx_hash"] == new_hash and again["verified_on_chain"] is False
    assert check is not None and check.tx_hash == new_hash and check.status == "not_found"


async def reports_of(database: Database, exploit_id: int) -> list[Any]:
    async with database.session() as session:
        return list((await session.execute(select(ReportRow).where(ReportRow.exploit_id == exploit_id))).scalars())
