"""The delivery worker against real loopback receivers: signing, retries, disabling, isolation, once-only."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import select, update
from standardwebhooks import Webhook

from kamiyo.db import Database
from kamiyo.delivery.models import UserWebhook, WebhookAttempt, WebhookDelivery
from kamiyo.exploits.models import ExploitEvent
from tests.delivery.support import (
    Receiver,
    add_webhook,
    auth,
    deliveries,
    delivery_settings,
    ingest,
    report,
    running_worker,
    wait_until,
)
from tests.support.app import running
from tests.support.users import user_with_key


async def _settled(database: Database, hook_id: int, count: int = 1, timeout: float = 10.0) -> list[WebhookDelivery]:
    async def done() -> bool:
        rows = await deliveries(database, hook_id)
        return len(rows) >= count and all(r.status != "pending" for r in rows)

    assert await wait_until(done, timeout), [
        (r.status, r.attempts, r.error) for r in await deliveries(database, hook_id)
    ]
    return await deliveries(database, hook_id)


async def test_delivery_is_a_verifiable_standard_webhook(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        hook_id, secret = await add_webhook(database, user_id, rx.url + "/hook")
        [exploit_id] = await ingest(database, report(protocol="Verifi", amount_usd=3_500_000.0))
        [got] = await rx.wait_for(1)
        payload = Webhook(secret).verify(got.body, got.headers)
        assert payload["type"] == "exploit.created" and payload["data"]["id"] == exploit_id
        assert payload["data"]["protocol"] == "Verifi" and payload["data"]["amount_usd"] == 3_500_000.0
        assert set(payload) == {"type", "timestamp", "data"}
        assert got.headers["Content-Type"] == "application/json"
        assert got.headers["User-Agent"].startswith("Kamiyo-Webhooks/")
        assert got.headers["webhook-id"].startswith("msg_")
        assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5
        assert got.headers["webhook-signature"].startswith("v1,") and " " not in got.headers["webhook-signature"]
        [row] = await _settled(database, hook_id)
        assert row.status == "succeeded" and row.attempts == 1 and row.response_status == 200
        assert row.body.encode() == got.body and row.message_id == got.headers["webhook-id"]
        assert row.latency_ms is not None and row.delivered_at is not None and row.exploit_id == exploit_id


async def test_receiver_failing_twice_gets_one_success_after_three_attempts_on_schedule(
    db_url: str, database: Database
) -> None:
    # A long safety poll: the retries must come on their schedule, not on a poll.
    settings = delivery_settings(db_url, KAMIYO_WEBHOOK_RETRY_SCHEDULE="0.5,1.0,5", KAMIYO_DELIVERY_POLL=30)
    async with Receiver(lambda _r, n: (500 if n <= 2 else 204, {}, 0.0)) as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        hook_id, secret = await add_webhook(database, user_id, rx.url + "/flaky")
        await ingest(database, report())
        got = await rx.wait_for(3, timeout=10)
        await asyncio.sleep(0.3)
        assert len(rx.requests) == 3
        gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
        assert 0.45 <= gaps[0] < 0.9 and 0.95 <= gaps[1] < 1.5, gaps
        assert len({r.headers["webhook-id"] for r in got}) == 1
        for request in got:
            Webhook(secret).verify(request.body, request.headers)
        [row] = await _settled(database, hook_id)
        assert (row.status, row.attempts, row.response_status) == ("succeeded", 3, 204)
        async with database.session() as session:
            attempts = (
                await session.execute(select(WebhookAttempt).where(WebhookAttempt.delivery_id == row.id))
            ).scalars()
            log = sorted(attempts, key=lambda a: a.attempt)
        assert [(a.attempt, a.response_status) for a in log] == [(1, 500), (2, 500), (3, 204)]
        assert log[0].error == "HTTP 500" and log[0].response_excerpt == "nope" and log[2].error is None


async def test_receiver_down_for_the_whole_schedule_ends_failed_and_a_replay_succeeds(
    db_url: str, database: Database
) -> None:
    up = False
    settings = delivery_settings(db_url, KAMIYO_WEBHOOK_RETRY_SCHEDULE="0.2,0.2,0.2")
    async with (
        Receiver(lambda _r, _n: (200 if up else 503, {}, 0.0)) as rx,
        running(settings, workers=False) as (app, c),
        running_worker(app.state.db, settings),
    ):
        user_id, key = await user_with_key(app.state.db, tier="team")
        hook_id, secret = await add_webhook(app.state.db, user_id, rx.url + "/down")
        await ingest(app.state.db, report())
        [row] = await _settled(app.state.db, hook_id)
        assert (row.status, row.attempts, row.error) == ("failed", 4, "HTTP 503")
        log = (await c.get(f"/api/v1/user-webhooks/{hook_id}/deliveries", headers=auth(key))).json()
        assert log["data"][0]["status"] == "failed" and log["data"][0]["attempts"] == 4
        up = True
        r = await c.post(f"/api/v1/user-webhooks/{hook_id}/deliveries/{row.id}/retry", headers=auth(key))
        assert r.status_code == 202 and r.json()["status"] == "pending"
        [row] = await _settled(app.state.db, hook_id)
        assert (row.status, row.attempts, row.response_status) == ("succeeded", 5, 200)
        assert len({r.headers["webhook-id"] for r in rx.requests}) == 1 and len(rx.requests) == 5
        Webhook(secret).verify(rx.requests[-1].body, rx.requests[-1].headers)
        detail = await c.get(f"/api/v1/user-webhooks/{hook_id}/deliveries/{row.id}", headers=auth(key))
        assert [a["response_status"] for a in detail.json()["attempts_log"]] == [503, 503, 503, 503, 200]


async def test_retry_after_is_honoured(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_WEBHOOK_RETRY_SCHEDULE="0.1,0.1")
    reply = lambda _r, n: (429, {"Retry-After": "2"}, 0.0) if n == 1 else (200, {}, 0.0)  # noqa: E731
    async with Receiver(reply) as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        hook_id, _ = await add_webhook(database, user_id, rx.url + "/busy")
        await ingest(database, report())
        got = await rx.wait_for(2, timeout=10)
        assert len(got) == 2 and 1.9 <= got[1].at - got[0].at < 3.5
        [row] = await _settled(database, hook_id)
        assert row.status == "succeeded" and row.attempts == 2


async def test_410_gone_disables_the_endpoint_with_a_reason(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    async with Receiver(lambda _r, _n: (410, {}, 0.0)) as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        hook_id, _ = await add_webhook(database, user_id, rx.url + "/gone")
        await ingest(database, report())
        [row] = await _settled(database, hook_id)
        assert row.status == "failed" and row.attempts == 1
        async with database.session() as session:
            hook = await session.get(UserWebhook, hook_id)
            assert hook is not None and not hook.enabled and "410" in (hook.disabled_reason or "")
        await ingest(database, report())  # a disabled endpoint gets nothing new
        await asyncio.sleep(0.5)
        assert len(rx.requests) == 1 and len(await deliveries(database, hook_id)) == 1


async def test_twenty_failed_deliveries_in_a_row_disable_the_endpoint(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_WEBHOOK_RETRY_SCHEDULE="")
    async with Receiver(lambda _r, _n: (500, {}, 0.0)) as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        hook_id, _ = await add_webhook(database, user_id, rx.url + "/broken")
        await ingest(database, *[report() for _ in range(19)])
        await _settled(database, hook_id, 19)
        async with database.session() as session:
            hook = await session.get(UserWebhook, hook_id)
            assert hook is not None and hook.enabled and hook.consecutive_failures == 19
        await ingest(database, report())
        await _settled(database, hook_id, 20)
        async with database.session() as session:
            hook = await session.get(UserWebhook, hook_id)
            assert hook is not None and not hook.enabled
            assert hook.disabled_reason == "disabled after 20 failed deliveries in a row"


async def test_a_success_resets_the_failure_streak(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_WEBHOOK_RETRY_SCHEDULE="")
    failing = True
    async with Receiver(lambda _r, _n: (500 if failing else 200, {}, 0.0)) as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        hook_id, _ = await add_webhook(database, user_id, rx.url + "/sometimes")
        await ingest(database, *[report() for _ in range(5)])
        await _settled(database, hook_id, 5)
        failing = False
        await ingest(database, report())
        await _settled(database, hook_id, 6)
        async with database.session() as session:
            hook = await session.get(UserWebhook, hook_id)
            assert hook is not None and hook.enabled and hook.consecutive_failures == 0


async def test_a_slow_receiver_does_not_delay_others(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_WEBHOOK_TIMEOUT=5)

    async def reply(request: web.Request, _n: int) -> tuple[int, dict[str, str], float]:
        return 200, {}, 3.0 if request.path == "/slow" else 0.0

    async with Receiver(reply) as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        await add_webhook(database, user_id, rx.url + "/slow")
        fast = [(await add_webhook(database, user_id, f"{rx.url}/fast{i}"))[0] for i in range(5)]
        started = time.monotonic()
        await ingest(database, report(), report())
        for hook_id in fast:
            await _settled(database, hook_id, 2, timeout=2.5)
        assert time.monotonic() - started < 2.5
        assert len([r for r in rx.requests if r.path.startswith("/fast")]) == 10


async def test_filters_pick_the_matching_endpoints(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="enterprise")
        wanted = {
            "all": {},
            "big": {"min_amount_usd": 1_000_000},
            "bsc": {"chains": ["bsc"]},
            "eth_or_arb": {"chains": ["ethereum", "arbitrum"]},
            "proto": {"protocols": ["  curve   FINANCE "]},
            "bridge": {"categories": ["bridge"]},
            "combo": {"chains": ["ethereum"], "categories": ["flash_loan"], "min_amount_usd": 5_000_000},
        }
        for name, filters in wanted.items():
            await add_webhook(database, user_id, f"{rx.url}/{name}", filters=filters)
        await ingest(
            database,
            report(protocol="Curve Finance", chain="ethereum", amount_usd=7e6, category="flash_loan"),
            report(protocol="Small", chain="bsc", amount_usd=5e4, category="bridge"),
            report(protocol="Unknown loss", chain="arbitrum", amount_usd=None, category="other"),
        )
        await rx.wait_for(10, timeout=10)
        await asyncio.sleep(0.5)
        got: dict[str, set[str]] = {}
        for r in rx.requests:
            got.setdefault(r.path.lstrip("/"), set()).add(json.loads(r.body)["data"]["protocol"])
        assert got == {
            "all": {"Curve Finance", "Small", "Unknown loss"},
            "big": {"Curve Finance"},
            "bsc": {"Small"},
            "eth_or_arb": {"Curve Finance", "Unknown loss"},
            "proto": {"Curve Finance"},
            "bridge": {"Small"},
            "combo": {"Curve Finance"},
        }


async def test_backfill_and_old_incidents_stay_silent(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        hook_id, _ = await add_webhook(database, user_id, rx.url + "/quiet")
        await ingest(database, report(), notify=False)  # a source's first import: no notify_since
        await ingest(database, report(timestamp=datetime.now(UTC) - timedelta(days=30)))  # older than 7 d
        await ingest(database, report(protocol="Fresh"))
        await rx.wait_for(1)
        await asyncio.sleep(0.5)
        assert len(rx.requests) == 1 and b'"protocol":"Fresh"' in rx.requests[0].body
        assert len(await deliveries(database, hook_id)) == 1


async def test_stale_undispatched_events_are_not_sent(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_ALERT_MAX_AGE="1h")
    user_id, _ = await user_with_key(database, tier="team")
    async with Receiver() as rx:
        hook_id, _ = await add_webhook(database, user_id, rx.url + "/late")
        await ingest(database, report())
        async with database.session() as session:  # as if no worker ran for two hours
            await session.execute(update(ExploitEvent).values(created_at=datetime.now(UTC) - timedelta(hours=2)))
        async with running_worker(database, settings) as worker:
            await asyncio.sleep(0.5)
            assert worker.state["dispatched"] == 0
        assert rx.requests == [] and await deliveries(database, hook_id) == []


async def test_each_event_reaches_an_endpoint_once_with_two_workers(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    other = Database(db_url)
    try:
        async with Receiver() as rx, running_worker(database, settings), running_worker(other, settings):
            user_id, _ = await user_with_key(database, tier="enterprise")
            hooks = [(await add_webhook(database, user_id, f"{rx.url}/h{i}"))[0] for i in range(10)]
            await ingest(database, *[report() for _ in range(10)])
            await rx.wait_for(100, timeout=15)
            await asyncio.sleep(0.5)
            assert len(rx.requests) == 100
            assert len({(r.path, r.headers["webhook-id"]) for r in rx.requests}) == 100
            for hook_id in hooks:
                rows = await deliveries(database, hook_id)
                assert len(rows) == 10 and len({r.event_id for r in rows}) == 10
    finally:
        await other.dispose()


async def test_exploit_updated_is_sent_when_a_material_fact_changes(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        hook_id, secret = await add_webhook(database, user_id, rx.url + "/updates")
        first = report(protocol="Growing", amount_usd=1e6)
        await ingest(database, first)
        await rx.wait_for(1)
        first.amount_usd = 9e6
        await ingest(database, first)
        got = await rx.wait_for(2)
        types = [Webhook(secret).verify(r.body, r.headers)["type"] for r in got]
        assert types == ["exploit.created", "exploit.updated"]
        assert Webhook(secret).verify(got[1].body, got[1].headers)["data"]["amount_usd"] == 9e6
        assert len(await _settled(database, hook_id, 2)) == 2


async def test_deleting_an_endpoint_while_its_send_is_in_flight_breaks_nothing(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)

    async def reply(request: web.Request, _n: int) -> tuple[int, dict[str, str], float]:
        return 200, {}, 1.0 if request.path == "/doomed" else 0.0

    async with Receiver(reply) as rx, running_worker(database, settings) as worker:
        user_id, _ = await user_with_key(database, tier="team")
        doomed, _ = await add_webhook(database, user_id, rx.url + "/doomed")
        kept, _ = await add_webhook(database, user_id, rx.url + "/kept")
        await ingest(database, report())
        await rx.wait_for(2)
        async with database.session() as session:
            await session.delete(await session.get(UserWebhook, doomed))
        assert await wait_until(lambda: _state_sent(worker, 2))
        assert "last_error" not in worker.state
        assert [r.status for r in await deliveries(database, kept)] == ["succeeded"]
        assert await deliveries(database, doomed) == []


async def _state_sent(worker: object, count: int) -> bool:
    return int(worker.state["sent"]) >= count  # type: ignore[attr-defined]
