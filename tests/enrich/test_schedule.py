"""The enrichment jobs on their timers: verification against a loopback JSON-RPC node, label feeds from a
loopback file server, one leader per job on PostgreSQL, and a failing job that keeps its loop."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable

import pytest

from kamiyo.db import Database
from kamiyo.enrich import prices
from kamiyo.enrich.schedule import EnrichScheduler, Job
from tests.enrich.conftest import PriceApi
from tests.enrich.rpc_server import ChainState, only, rpc_server
from tests.enrich.test_labels import LAZARUS, _stored
from tests.enrich.test_onchain import TARGET, check_of, mined
from tests.enrich.test_prices import QUICK, records
from tests.submissions.helpers import seeded
from tests.support.app import make_settings


async def _until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        met = condition()
        if await met if inspect.isawaitable(met) else met:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_the_jobs_verify_transactions_price_losses_and_refresh_labels_on_their_timers(
    db_url: str,
    database: Database,
    feed_server: tuple[str, list[str]],
    price_api: tuple[str, PriceApi],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, seen = feed_server
    monkeypatch.setattr(prices, "INTERVAL_S", 0.0)
    monkeypatch.setattr(prices, "POLICY", QUICK)
    state = ChainState()
    target = await seeded(database, TARGET)
    mined(state, target["tx_hash"])
    async with rpc_server(state) as rpc:
        settings = make_settings(
            db_url,
            KAMIYO_OFFLINE=False,
            KAMIYO_RPC_URLS=only(ethereum=f"{rpc}/v3/KEY"),
            KAMIYO_SOURCE_URLS=json.dumps(
                {"ofac": f"{base}/sdn.csv", "scamsniffer": f"{base}/all.json", "prices": price_api[0]}
            ),
        )
        scheduler = EnrichScheduler(database, settings, verify_every=0.2, labels_every=0.2, first_after=0)
        assert scheduler.status["jobs"] == ["labels", "verify", "prices"]
        await scheduler.start()
        try:

            async def verified() -> bool:
                check = await check_of(database, target["id"])
                return check is not None and check.status == "verified"

            assert await _until(verified)
            assert await _until(lambda: len(seen) >= 4)  # two turns of both feeds
            assert await _until(lambda: "verify" in scheduler.status["runs"])
            assert await _until(lambda: "prices" in scheduler.status["runs"])
        finally:
            await scheduler.stop()
    assert (LAZARUS, "ofac") in await _stored(database)
    assert seen[2] and seen[3]  # the later turns asked conditionally (If-Modified-Since): an unchanged feed is a 304
    assert scheduler.status["runs"]["verify"]["outcome"] == "ok" and scheduler.status["state"] == "stopped"
    assert scheduler.status["runs"]["prices"]["outcome"] == "ok" and price_api[1].asked
    assert any(r.amount_status == "priced" for r in await records(database))


async def test_without_rpc_endpoints_verification_does_not_run_and_offline_starts_nothing(db_url: str) -> None:
    database = Database(db_url)
    try:
        every_chain_off = make_settings(db_url, KAMIYO_OFFLINE=False, KAMIYO_RPC_URLS=only())
        assert EnrichScheduler(database, every_chain_off, first_after=3600).status["jobs"] == ["labels", "prices"]
        defaults = make_settings(db_url, KAMIYO_OFFLINE=False)  # the public endpoints: on (never run here)
        jobs = EnrichScheduler(database, defaults, first_after=3600).status["jobs"]
        assert jobs == ["labels", "verify", "prices"]
    finally:
        await database.dispose()


async def test_a_failing_job_is_logged_and_keeps_its_turns(db_url: str, database: Database) -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("node exploded")

    scheduler = EnrichScheduler(database, make_settings(db_url), first_after=0)
    scheduler.jobs = [Job("broken", 0.05, broken)]
    await scheduler.start()
    try:
        assert await _until(lambda: calls >= 3, timeout=10)
    finally:
        await scheduler.stop()
    assert scheduler.status["runs"]["broken"]["outcome"] == "failed"


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite deployments run one worker process
async def test_one_worker_at_a_time_leads_a_job_on_postgresql(db_url: str) -> None:
    running = 0
    most = 0

    async def slow() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.3)
        running -= 1

    job = Job("slow", 3600, slow)
    dbs = [Database(db_url), Database(db_url)]
    schedulers = [EnrichScheduler(db, make_settings(db_url), first_after=3600) for db in dbs]
    for scheduler in schedulers:
        await scheduler.start()
    try:
        ran = await asyncio.gather(*(s.run_once(job) for s in schedulers))
        assert sorted(ran) == [False, True] and most == 1
        assert await schedulers[0].run_once(job)  # free again once the leader is done
    finally:
        for scheduler in schedulers:
            await scheduler.stop()
        for db in dbs:
            await db.dispose()
