"""The scheduler: health bookkeeping, keys, offline mode, the in-process loop, leaders, the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.ingest import scheduler as scheduler_module
from kamiyo.ingest.models import SourceRun
from kamiyo.ingest.runner import IngestOptions, RunOutcome, leadership, run_source
from kamiyo.ingest.scheduler import lock_engine_for, next_delay, run_round
from kamiyo.sources import REGISTRY
from kamiyo.sources.http import FetchPolicy, new_client
from tests.sources.fixture_server import FixtureServer, fixture_server
from tests.support.app import make_client, make_settings
from tests.support.cli import kamiyo

FAST = FetchPolicy(timeout=1.0, retries=0)


@pytest.fixture(scope="module")
def server() -> Iterator[FixtureServer]:
    with fixture_server() as running:
        yield running


async def test_round_books_health_that_sources_and_health_show(db_url: str, server: FixtureServer) -> None:
    server.modes.clear()
    server.modes["defillama"] = "500"
    db = Database(db_url)
    options = IngestOptions(source_urls=server.source_urls("defillama", "rekt"), policy=FAST)
    outcomes = await run_round(db, options, [REGISTRY["defillama"], REGISTRY["rekt"]])
    async with db.session() as session:
        runs = (await session.execute(select(SourceRun).order_by(SourceRun.id))).scalars().all()
    await db.dispose()
    server.modes.clear()
    assert [o.status for o in outcomes] == ["failed", "ok"] and "HTTP 500" in (outcomes[0].error or "")
    assert {(r.source, r.ok) for r in runs} >= {("defillama", False), ("rekt", True)}
    async for client in make_client(make_settings(db_url, KAMIYO_RUN_WORKERS=True)):
        sources = {s["name"]: s for s in (await client.get("/sources")).json()}
        health = (await client.get("/health")).json()
    assert sources["defillama"]["healthy"] is False and "HTTP 500" in sources["defillama"]["last_error"]
    assert sources["defillama"]["consecutive_failures"] == 1
    assert sources["rekt"]["healthy"] is True and sources["rekt"]["items"] == 8
    assert sources["rekt"]["last_success_at"] and sources["rekt"]["latency_ms"] > 0
    assert health["status"] == "degraded" and health["sources"]["failing"] == ["defillama"]
    assert health["sources"]["total"] == len(REGISTRY) and health["workers"]["ingest"] == "offline"


async def test_a_source_needing_a_key_is_off_until_the_key_is_set(
    db_url: str, server: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed = replace(REGISTRY["defillama"], name="keyed_llama", needs_key="KAMIYO_TEST_LLAMA_KEY")
    monkeypatch.setitem(REGISTRY, "keyed_llama", keyed)
    monkeypatch.delenv("KAMIYO_TEST_LLAMA_KEY", raising=False)
    options = IngestOptions(source_urls={"keyed_llama": server.url("defillama")}, policy=FAST)
    db = Database(db_url)
    before = len(server.requests)
    (off,) = await run_round(db, options, [keyed])
    async for client in make_client(make_settings(db_url)):
        listed = {s["name"]: s for s in (await client.get("/sources")).json()}["keyed_llama"]
    monkeypatch.setenv("KAMIYO_TEST_LLAMA_KEY", "secret")
    (on,) = await run_round(db, options, [keyed])
    await db.dispose()
    assert off.status == "disabled" and off.error == "needs KAMIYO_TEST_LLAMA_KEY"
    assert listed["enabled"] is False and listed["disabled_reason"] == "needs KAMIYO_TEST_LLAMA_KEY"
    assert on.status == "ok" and on.items == 448 and len(server.requests) == before + 1


async def test_the_app_runs_the_scheduler_in_process(
    db_url: str, server: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three sources, each in its own loop, against the fixture server (loopback only). Small feeds:
    what a whole source's ingest stores is proven in tests/ingest, this proves the loops."""
    local = {name: REGISTRY[name] for name in ("rekt", "slowmist", "theblock")}
    monkeypatch.setattr(scheduler_module, "REGISTRY", local)
    monkeypatch.setattr(scheduler_module, "FIRST_RUN_SPREAD", 0.01)
    server.modes.clear()
    urls = json.dumps(server.source_urls(*local))
    settings = make_settings(db_url, KAMIYO_OFFLINE=False, KAMIYO_SOURCE_URLS=urls, KAMIYO_RUN_WORKERS=True)
    async for client in make_client(settings):
        for _ in range(300):
            workers = (await client.get("/health")).json()["workers"]
            if workers["ingest"]["runs"] >= len(local):
                break
            await asyncio.sleep(0.05)
        sources = {s["name"]: s for s in (await client.get("/sources")).json()}
    assert workers["ingest"]["state"] == "running" and workers["ingest"]["sources"] == len(local)
    assert all(sources[name]["healthy"] for name in local), {n: sources[n]["last_error"] for n in local}


async def test_no_workers_and_offline_keep_the_scheduler_off(db_url: str) -> None:
    async for client in make_client(make_settings(db_url, KAMIYO_OFFLINE=False, KAMIYO_RUN_WORKERS=False)):
        assert (await client.get("/health")).json()["workers"]["ingest"] == "off"
    async for client in make_client(make_settings(db_url, KAMIYO_OFFLINE=True, KAMIYO_RUN_WORKERS=True)):
        assert (await client.get("/health")).json()["workers"]["ingest"] == "offline"


def test_failing_sources_back_off_exponentially_up_to_their_cadence() -> None:
    source = REGISTRY["defillama"]
    failed = RunOutcome("defillama", "failed")
    delays = [next_delay(source, failed, n) for n in (1, 2, 3, 10)]
    assert 54 <= delays[0] <= 66 and 108 <= delays[1] <= 132 and 216 <= delays[2] <= 264
    assert delays[3] <= source.cadence_seconds * 1.1
    assert 0.9 * source.cadence_seconds <= next_delay(source, RunOutcome("defillama", "ok"), 0) <= 1.1 * 3600


async def test_one_leader_per_source_on_postgresql(db_url: str, backend: str, server: FixtureServer) -> None:
    db = Database(db_url)
    lock_engine = lock_engine_for(db)
    if backend == "sqlite":
        assert lock_engine is None
        await db.dispose()
        return
    assert lock_engine is not None
    options = IngestOptions(source_urls=server.source_urls("rekt"), policy=FAST)
    async with new_client() as client, leadership(lock_engine, "rekt") as held:
        assert held
        other_engine = lock_engine_for(db)
        assert other_engine is not None
        outcome = await run_source(
            db, REGISTRY["rekt"], client, options, store_lock=asyncio.Lock(), lock_engine=other_engine
        )
        await other_engine.dispose()
    async with new_client() as client:
        after = await run_source(
            db, REGISTRY["rekt"], client, options, store_lock=asyncio.Lock(), lock_engine=lock_engine
        )
    await lock_engine.dispose()
    await db.dispose()
    assert outcome.status == "skipped" and after.status == "ok"


def _kamiyo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {"KAMIYO_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}", "COLUMNS": "160", "KAMIYO_OFFLINE": None}
    return kamiyo(*args, **{**settings, **env})


def test_cli_ingest_sources_and_worker(tmp_path: Path, server: FixtureServer) -> None:
    server.modes.clear()
    urls = json.dumps(server.source_urls(*REGISTRY))
    first = _kamiyo(tmp_path, "ingest", "--source", "defillama", "--source", "rekt", KAMIYO_SOURCE_URLS=urls)
    again = _kamiyo(tmp_path, "ingest", "--source", "rekt", KAMIYO_SOURCE_URLS=urls)
    listed = _kamiyo(tmp_path, "sources")
    unknown = _kamiyo(tmp_path, "ingest", "--source", "nope")
    offline = _kamiyo(tmp_path, "ingest", KAMIYO_OFFLINE="1", KAMIYO_SOURCE_URLS=urls)
    worker_help = _kamiyo(tmp_path, "worker", "--help")
    assert first.returncode == 0, first.stderr
    for word in ("source", "status", "items", "new", "updated", "latency", "error", "defillama", "448"):
        assert word in first.stdout
    assert "not_modified" in again.stdout
    assert listed.returncode == 0 and "defillama" in listed.stdout and "slowmist" in listed.stdout
    assert "never ran" in listed.stdout and "ok" in listed.stdout
    assert unknown.returncode == 2 and "unknown source" in unknown.stderr
    assert offline.returncode == 0 and "KAMIYO_OFFLINE" in offline.stderr
    assert "--ingest" in worker_help.stdout and "--no-deliver" in worker_help.stdout
