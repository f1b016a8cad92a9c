"""Fan-out: one event to many endpoints, claimed ahead in large batches, within each target's cap."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import insert, select, update

from kamiyo.db import Database
from kamiyo.delivery.dispatch import IndexCache, dispatch_events, new_message_ids
from kamiyo.delivery.models import UserWebhook, WebhookDelivery
from kamiyo.delivery.queue import Outcome, bump_subscriptions
from kamiyo.delivery.worker import UNRECORDED_POOLS, WRITE_GATHER_MAX, DeliveryWorker
from kamiyo.exploits.models import ExploitEvent
from kamiyo.kit.crypto import SecretBox, new_webhook_secret
from tests.delivery.support import (
    SECRET_KEY,
    Receiver,
    add_webhook,
    delivery_settings,
    ingest,
    report,
    running_worker,
    succeeded_count,
    wait_until,
)
from tests.support.users import user_with_key


async def _add_webhooks(database: Database, user_id: int, urls: list[str]) -> None:
    """Many endpoints in one statement (the API path is tested elsewhere)."""
    now = datetime.now(UTC)
    secret = SecretBox(SECRET_KEY).encrypt(new_webhook_secret())
    rows = [
        {"user_id": user_id, "url": url, "description": "", "filters": {}, "min_amount_usd": None, "enabled": True}
        | {"consecutive_failures": 0, "secret_enc": secret, "created_at": now, "updated_at": now}
        for url in urls
    ]
    async with database.session() as session:
        await session.execute(insert(UserWebhook), rows)
        await bump_subscriptions(session)


async def _has_succeeded(database: Database, count: int) -> bool:
    return await succeeded_count(database) == count


async def _rows(database: Database) -> list[WebhookDelivery]:
    async with database.session() as session:
        return list((await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))).scalars())


def test_message_ids_come_in_bulk_unique_and_well_formed() -> None:
    ids = new_message_ids(5000)
    assert len(ids) == len(set(ids)) == 5000
    assert all(re.fullmatch(r"msg_[A-Za-z0-9_-]{24}", i) for i in ids)
    assert new_message_ids(0) == []


async def test_one_event_to_many_endpoints_is_one_row_each_once(database: Database) -> None:
    user_id, _ = await user_with_key(database, tier="enterprise")
    await _add_webhooks(database, user_id, [f"https://hooks.example.com/{i}" for i in range(300)])
    await ingest(database, report(protocol="Fanfi"))
    now = datetime.now(UTC)
    for _ in range(2):  # the second pass re-dispatches the same event: nothing new
        async with database.session() as session:
            stats = await dispatch_events(
                session, IndexCache(), now=now, max_age=timedelta(days=7), public_url="https://k.example"
            )
        assert stats.events == 1 and stats.webhook_rows == 300
        async with database.session() as session:
            await session.execute(update(ExploitEvent).values(dispatched_at=None))
    rows = await _rows(database)
    assert len(rows) == 300 and len({r.webhook_id for r in rows}) == 300
    assert len({r.message_id for r in rows}) == 300 and len({r.body for r in rows}) == 1
    assert b'"protocol":"Fanfi"' in rows[0].body.encode()
    assert {(r.status, r.attempts, r.event_type) for r in rows} == {("pending", 0, "exploit.created")}
    assert all(r.next_attempt_at == r.created_at and r.event_id == rows[0].event_id for r in rows)


async def test_fan_out_is_claimed_in_a_few_large_batches(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_DELIVERY_CONCURRENCY=100)
    async with Receiver() as rx, running_worker(database, settings) as worker:
        user_id, _ = await user_with_key(database, tier="enterprise")
        await _add_webhooks(database, user_id, [f"{rx.url}/e{i}" for i in range(600)])
        await asyncio.sleep(0.2)
        await ingest(database, report())
        assert len(await rx.wait_for(600, timeout=30)) == 600
        assert await wait_until(lambda: _has_succeeded(database, 600), timeout=10)
    # The first claim takes twice the pool, later ones about half of it: not one per free slot.
    assert worker.state["claims"] <= 12, worker.state
    assert len({r.path for r in rx.requests}) == 600 and worker.state["lease_expired"] == 0


async def test_a_target_never_has_more_rows_in_flight_than_its_cap(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_DELIVERY_PER_ENDPOINT=2, KAMIYO_DELIVERY_CONCURRENCY=50)
    busy: Counter[str] = Counter()
    most: Counter[str] = Counter()

    async def reply(request: web.Request, _n: int) -> tuple[int, dict[str, str], float]:
        busy[request.path] += 1
        most[request.path] = max(most[request.path], busy[request.path])
        await asyncio.sleep(0.15)
        busy[request.path] -= 1
        return 200, {}, 0.0

    async with Receiver(reply) as rx, running_worker(database, settings) as worker:
        user_id, _ = await user_with_key(database, tier="enterprise")
        await add_webhook(database, user_id, rx.url + "/one")
        await ingest(database, *[report() for _ in range(12)])  # 12 rows for one endpoint, due at once
        assert len(await rx.wait_for(12, timeout=20)) == 12
        await asyncio.sleep(0.3)
    assert most["/one"] == 2 and len(rx.requests) == 12
    assert len({r.headers["webhook-id"] for r in rx.requests}) == 12 and worker.state["lease_expired"] == 0


async def test_rows_held_at_stop_are_given_back_due_now(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_DELIVERY_CONCURRENCY=2)
    async with Receiver(lambda _r, _n: (200, {}, 0.4)) as rx:
        user_id, _ = await user_with_key(database, tier="enterprise")
        await _add_webhooks(database, user_id, [f"{rx.url}/e{i}" for i in range(10)])
        async with running_worker(database, settings) as worker:
            await ingest(database, report())
            await rx.wait_for(2, timeout=10)
            assert len(worker.held) == 2  # claimed ahead: two sending, two held
        stopped = datetime.now(UTC)
        rows = await _rows(database)
        assert sum(r.status == "succeeded" for r in rows) == 2  # the two in flight finished within the grace
        pending = [r for r in rows if r.status == "pending"]
        assert len(pending) == 8 and all(r.next_attempt_at <= stopped for r in pending)  # none left leased
        async with running_worker(database, settings):  # the next worker sends them now, not a lease later
            assert len(await rx.wait_for(10, timeout=8)) == 10
    assert len({r.path for r in rx.requests}) == 10


async def test_a_held_row_whose_lease_runs_out_is_not_sent_until_claimed_again(db_url: str, database: Database) -> None:
    # Lease 2 s, send timeout 1 s: a held row must start within 0.5 s of its claim; sends take 0.8 s.
    env = {"KAMIYO_DELIVERY_CONCURRENCY": 1, "KAMIYO_WEBHOOK_TIMEOUT": 1, "KAMIYO_DELIVERY_LEASE": 2}
    settings = delivery_settings(db_url, **env)
    async with Receiver(lambda _r, _n: (200, {}, 0.8)) as rx, running_worker(database, settings) as worker:
        user_id, _ = await user_with_key(database, tier="enterprise")
        await _add_webhooks(database, user_id, [f"{rx.url}/e{i}" for i in range(3)])
        await ingest(database, report())
        assert len(await rx.wait_for(3, timeout=20)) == 3
        await asyncio.sleep(0.5)
        assert worker.state["lease_expired"] >= 1
    assert sorted(r.path for r in rx.requests) == ["/e0", "/e1", "/e2"]  # each once: no second send


class _StalledWrites(DeliveryWorker):
    """Stands in for a database whose commits have stalled: outcomes are recorded only once the gate opens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()

    async def _flush(self, batch: list[Outcome]) -> None:
        await self.gate.wait()
        await super()._flush(batch)


async def test_a_stalled_write_pauses_sending_so_a_crash_repeats_at_most_three_pools(
    db_url: str, database: Database
) -> None:
    pool = 4
    settings = delivery_settings(db_url, KAMIYO_DELIVERY_CONCURRENCY=pool, KAMIYO_DELIVERY_LEASE=30)
    worker = _StalledWrites(database, settings)
    async with Receiver(lambda _r, _n: (200, {}, 0.0)) as rx:
        user_id, _ = await user_with_key(database, tier="enterprise")
        await _add_webhooks(database, user_id, [f"{rx.url}/e{i}" for i in range(40)])
        await worker.start()
        try:
            await ingest(database, report())
            await rx.wait_for(UNRECORDED_POOLS * pool, timeout=10)
            await asyncio.sleep(0.5)  # sends would go on here if nothing held them back
            assert len(rx.requests) == UNRECORDED_POOLS * pool
            assert worker.unrecorded + worker.running == UNRECORDED_POOLS * pool
            worker.gate.set()
            await rx.wait_for(40, timeout=10)
            assert await wait_until(lambda: _has_succeeded(database, 40), timeout=10)
        finally:
            worker.gate.set()
            await worker.stop()
    assert sorted(r.path for r in rx.requests) == sorted(f"/e{i}" for i in range(40))  # each once


async def test_outcomes_wait_for_company_only_while_sends_are_running(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'unused.db'}"  # never connected to
    worker = DeliveryWorker(Database(url), delivery_settings(url, KAMIYO_DELIVERY_CONCURRENCY=50))
    try:
        started = time.monotonic()
        await worker._gather()  # nothing running: record at once
        assert time.monotonic() - started < 0.05
        worker.running = 10
        started = time.monotonic()
        await worker._gather()  # sends running, few outcomes: wait, but not for long
        assert WRITE_GATHER_MAX <= time.monotonic() - started < WRITE_GATHER_MAX + 0.2
        for _ in range(49):
            worker.results.put_nowait(None)
        started = time.monotonic()
        await worker._gather()  # a pool's worth already there
        assert time.monotonic() - started < 0.05
    finally:
        await worker.db.dispose()
