"""`GET /api/v1/stream` over a real HTTP server: SSE events, filters, heartbeats, tiers, other processes' writes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from kamiyo.db import Database
from tests.delivery.support import auth, delivery_settings, ingest, report
from tests.support.services import free_port
from tests.support.users import user_with_key


@asynccontextmanager
async def serving(settings: Any) -> AsyncIterator[tuple[str, Database]]:
    """The app under uvicorn on a free loopback port (the in-process transport cannot stream)."""
    from kamiyo.app import create_app

    app = create_app(settings.model_copy(update={"run_workers": False}))  # the stream needs no delivery worker
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app.state.db
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Events:
    """Reads an SSE response into (event, id, data) tuples and comment lines."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self, timeout: float = 5.0) -> dict[str, str]:
        async def read() -> dict[str, str]:
            fields: dict[str, str] = {}
            async for line in self.lines:
                if not line:
                    if fields:
                        return fields
                    continue
                if line.startswith(":"):
                    self.comments.append(line)
                    if line == ": heartbeat":
                        return {"comment": line}
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            raise EOFError

        return await asyncio.wait_for(read(), timeout)

    async def next_event(self, timeout: float = 5.0) -> dict[str, str]:
        while True:
            item = await self.next(timeout)
            if "event" in item:
                return item

    async def heartbeat(self, timeout: float) -> None:
        while "comment" not in await self.next(timeout):
            pass


async def test_stream_sends_matching_new_exploits_and_heartbeats(db_url: str) -> None:
    settings = delivery_settings(db_url, KAMIYO_STREAM_HEARTBEAT=0.3)
    async with serving(settings) as (base, db), httpx.AsyncClient(base_url=base, timeout=10) as c:
        _, key = await user_with_key(db, tier="pro")
        async with c.stream("GET", "/api/v1/stream?chain=bsc&min_amount=1000", headers=auth(key)) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = Events(r)
            await events.heartbeat(2)
            await ingest(db, report(protocol="Ethfi", chain="ethereum"), report(protocol="Bscfi", chain="bsc"))
            await ingest(db, report(protocol="Tiny", chain="bsc", amount_usd=10.0))
            await ingest(db, report(protocol="Old", chain="bsc", timestamp=datetime.now(UTC) - timedelta(days=60)))
            first = await events.next_event()
            assert first["event"] == "exploit.created" and first["id"].isdigit()
            exploit = json.loads(first["data"])
            assert exploit["protocol"] == "Bscfi" and exploit["chain"] == "bsc" and exploit["sources"]
            await ingest(db, report(protocol="Second", chain="bsc"))
            assert json.loads((await events.next_event())["data"])["protocol"] == "Second"


async def test_stream_resumes_from_last_event_id(db_url: str) -> None:
    async with serving(delivery_settings(db_url)) as (base, db), httpx.AsyncClient(base_url=base, timeout=10) as c:
        _, key = await user_with_key(db, tier="team")
        async with c.stream("GET", "/api/v1/stream", headers=auth(key)) as r:
            events = Events(r)
            await ingest(db, report(protocol="One"))
            first = await events.next_event()
        await ingest(db, report(protocol="Two"), report(protocol="Three"))
        headers = auth(key) | {"Last-Event-ID": first["id"]}
        async with c.stream("GET", "/api/v1/stream", headers=headers) as r:
            events = Events(r)
            names = [json.loads((await events.next_event())["data"])["protocol"] for _ in range(2)]
            assert sorted(names) == ["Three", "Two"]


async def test_stream_needs_pro_or_better_and_valid_filters(db_url: str) -> None:
    async with serving(delivery_settings(db_url)) as (base, db), httpx.AsyncClient(base_url=base, timeout=10) as c:
        _, free = await user_with_key(db, tier="free")
        _, pro = await user_with_key(db, tier="pro")
        assert (await c.get("/api/v1/stream")).status_code == 401
        r = await c.get("/api/v1/stream", headers=auth(free))
        assert r.status_code == 403 and "pro" in r.json()["error"]["message"]
        assert (await c.get("/api/v1/stream?chain=nope", headers=auth(pro))).status_code == 422
        assert (await c.get("/api/v1/stream?min_amount=-5", headers=auth(pro))).status_code == 422


async def test_stream_sees_exploits_stored_by_another_process(db_url: str, tmp_path: Path) -> None:
    """`kamiyo import --notify` in a separate process: the server's stream gets it (works across processes)."""
    row = {
        "protocol": "Imported Curated",
        "chain": "arbitrum",
        "amount_usd": 4_000_000,
        "timestamp": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "category": "access_control",
        "tx_hash": "0x" + "cd" * 32,
        "description": "Operator-curated incident.",
    }
    path = tmp_path / "incident.json"
    path.write_text(json.dumps([row]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIYO_")}
    env.update(KAMIYO_DATABASE_URL=db_url, KAMIYO_SEED="0", KAMIYO_OFFLINE="1")
    async with serving(delivery_settings(db_url)) as (base, db), httpx.AsyncClient(base_url=base, timeout=10) as c:
        _, key = await user_with_key(db, tier="pro")
        async with c.stream("GET", "/api/v1/stream?chain=arbitrum", headers=auth(key)) as r:
            events = Events(r)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kamiyo.cli", "import", str(path), "--notify", env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert await asyncio.wait_for(proc.wait(), 60) == 0
            event = await events.next_event(timeout=10)
            assert json.loads(event["data"])["protocol"] == "Imported Curated"
