"""Faults: PostgreSQL restarting under load, a read-only database, a full disk.

The API must answer a clear 503 `database_unavailable` (never a 500, never a hang), keep serving what it
can, recover by itself, and leave the data intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import event, text

from kamiyo import migrations
from kamiyo.api_deps import SessionDep
from kamiyo.db import Database
from tests.ops.helpers import INSERT_EXPLOIT
from tests.support.app import make_settings, running
from tests.support.services import free_port, postgres_cluster, psql

READS = ["/exploits?page_size=5", "/stats?days=30", "/chains", "/exploits?chain=bsc&sort=-amount_usd"]


async def _write(session: SessionDep, size: int = 0) -> dict[str, Any]:
    """A tiny write endpoint (the public API is read-only), storing one row per call through the usual session."""
    params = {"p": "fault-probe-" + "x" * size, "now": datetime.now(UTC)}
    return {"id": (await session.execute(INSERT_EXPLOIT, params)).scalar_one()}


WRITES = APIRouter()
WRITES.add_api_route("/_test/write", _write, methods=["POST"])


@contextlib.asynccontextmanager
async def _client(url: str, database: Database | None = None) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(url, KAMIYO_RATE_LIMITS="off")
    async with running(settings, routers=[WRITES], database=database, timeout=30) as (_, client):
        yield client


def _assert_database_unavailable(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "database_unavailable" and error["details"]["reason"] == reason, error
    assert "Traceback" not in response.text and "sqlite" not in response.text.lower()


# --- PostgreSQL stopped and started under load ----------------------------------------------------


@dataclass
class Answer:
    phase: str
    status: int
    code: str | None
    seconds: float


async def _load(client: httpx.AsyncClient, state: dict[str, Any], answers: list[Answer]) -> None:
    while not state["done"]:
        phase, started = state["phase"], time.monotonic()
        response = await client.get(random.choice(READS))
        code = response.json().get("error", {}).get("code") if response.status_code != 200 else None
        phase = phase if state["phase"] == phase else "changing"  # it straddled a change of phase
        answers.append(Answer(phase, response.status_code, code, time.monotonic() - started))
        await asyncio.sleep(0.005)


async def _recovered(answers: list[Answer], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail = [a for a in answers if a.phase == "restarted"][-30:]
        if len(tail) == 30 and all(a.status == 200 for a in tail):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_postgresql_restart_under_load_answers_503_then_recovers_by_itself() -> None:
    with postgres_cluster() as pg:
        await asyncio.to_thread(psql, pg.url, "CREATE DATABASE kamiyo")
        url = f"{pg.url}/kamiyo"
        await asyncio.to_thread(migrations.upgrade, url)
        state: dict[str, Any] = {"phase": "up", "done": False}
        answers: list[Answer] = []
        async with _client(url) as client:
            workers = [asyncio.create_task(_load(client, state, answers)) for _ in range(16)]
            try:
                await asyncio.sleep(1.0)
                state["phase"] = "stopping"
                await asyncio.to_thread(pg.stop)
                state["phase"] = "down"
                await asyncio.sleep(1.5)
                health = await client.get("/health")
                state["phase"] = "starting"
                await asyncio.to_thread(pg.start)
                state["phase"] = "restarted"
                recovered = await _recovered(answers, timeout=20)
            finally:
                state["done"] = True
                await asyncio.gather(*workers)
    by_phase = {p: [a for a in answers if a.phase == p] for p in ("up", "down", "restarted")}
    assert {a.status for a in answers} <= {200, 503}, {a.status for a in answers}
    assert by_phase["up"] and all(a.status == 200 for a in by_phase["up"])
    assert len(by_phase["down"]) >= 20 and all(a.status == 503 for a in by_phase["down"])
    assert {a.code for a in answers if a.status == 503} == {"database_unavailable"}
    assert max(a.seconds for a in by_phase["down"]) < 5, "requests hung during the outage"
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert recovered, "the API did not recover by itself after PostgreSQL came back"


async def test_asyncpg_connect_errors_map_to_503() -> None:
    """Refused connections (raised raw by asyncpg, not wrapped by SQLAlchemy) are an outage, not a bug."""
    async with _client(f"postgresql://postgres@127.0.0.1:{free_port()}/kamiyo") as client:
        response = await client.get("/exploits")
    _assert_database_unavailable(response, "unreachable")
    assert response.headers["retry-after"] == "5"


# --- read-only database ---------------------------------------------------------------------------


@contextlib.contextmanager
def _read_only_sqlite(path: Path) -> Iterator[None]:
    """Make the database file unwritable, even for root (immutable attribute); skip where impossible."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make a file read-only for root here (chattr +i: {made.stderr.decode().strip()})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


async def _set_pg_read_only(url: str, on: bool) -> None:
    admin, name = url.rsplit("/", 1)
    conn = await asyncpg.connect(f"{admin}/postgres")
    try:
        await conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = {'on' if on else 'off'}")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _read_only(backend: str, url: str) -> AsyncIterator[None]:
    if backend == "sqlite":
        with _read_only_sqlite(Path(url.removeprefix("sqlite:///"))):
            yield
        return
    await _set_pg_read_only(url, True)
    try:
        yield
    finally:
        await _set_pg_read_only(url, False)


async def _count(url: str) -> int:
    db = Database(url)
    try:
        async with db.session() as session:
            return int((await session.execute(text("SELECT count(*) FROM exploits"))).scalar_one())
    finally:
        await db.dispose()


def _integrity_ok(url: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_read_only_database_refuses_writes_with_503_and_keeps_serving_reads(backend: str, db_url: str) -> None:
    rows = await _count(db_url)
    async with _read_only(backend, db_url), _client(db_url) as client:
        for path in READS:
            assert (await client.get(path)).status_code == 200, path
        refused = await client.post("/_test/write")
        _assert_database_unavailable(refused, "read_only")
        assert "retry-after" not in refused.headers
        assert (await client.get("/exploits?page_size=1")).status_code == 200
    _integrity_ok(db_url)
    assert await _count(db_url) == rows
    async with _client(db_url) as client:
        assert (await client.post("/_test/write")).status_code == 200
    assert await _count(db_url) == rows + 1


# --- a full disk (SQLite) -------------------------------------------------------------------------


async def test_full_disk_refuses_writes_with_503_without_corrupting_sqlite(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """SQLite's max_page_count raises the same SQLITE_FULL a full file system does."""
    path = tmp_path / "kamiyo.db"
    path.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{path}"
    rows = await _count(url)
    with sqlite3.connect(path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    database = Database(url)

    def cap(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.cursor().execute(f"PRAGMA max_page_count = {pages}")

    event.listen(database.engine.sync_engine, "connect", cap)
    try:
        async with _client(url, database) as client:
            full = await client.post("/_test/write?size=5000000")
            _assert_database_unavailable(full, "disk_full")
            assert (await client.get("/exploits?page_size=5")).status_code == 200
    finally:
        await database.dispose()
    _integrity_ok(url)
    assert await _count(url) == rows
