"""Webhook endpoints end to end: rotation window, `/test`, delivery log, connect-time SSRF guard, redirects."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks.webhooks
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from kamiyo.db import Database
from kamiyo.kit import ssrf
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


class _Later(datetime):
    """`datetime` whose now() is 25 h ahead, for verifying messages signed by a worker living in the future."""

    @classmethod
    def now(cls, tz: Any = None) -> _Later:  # type: ignore[override]
        real = datetime.now(tz)
        return cls.fromtimestamp((real + timedelta(hours=25)).timestamp(), tz)


async def test_rotation_signs_with_old_and_new_for_24_hours_then_new_only(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running(settings, workers=False) as (app, c):
        db = app.state.db
        _, key = await user_with_key(db, tier="team")
        created = (await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": rx.url + "/rot"})).json()
        old = created["secret"]
        new = (await c.post(f"/api/v1/user-webhooks/{created['id']}/rotate-secret", headers=auth(key))).json()["secret"]
        async with running_worker(db, settings):
            await ingest(db, report())
            [got] = await rx.wait_for(1)
        signatures = got.headers["webhook-signature"]
        assert signatures.count(" ") == 1 and all(s.startswith("v1,") for s in signatures.split(" "))
        assert Webhook(old).verify(got.body, got.headers)["type"] == "exploit.created"
        assert Webhook(new).verify(got.body, got.headers)["type"] == "exploit.created"

        later = lambda: datetime.now(UTC) + timedelta(hours=25)  # noqa: E731
        async with running_worker(db, settings, clock=later):
            await ingest(db, report())
            got = (await rx.wait_for(2))[1]
        assert " " not in got.headers["webhook-signature"]
        monkeypatch.setattr(standardwebhooks.webhooks, "datetime", _Later)
        assert Webhook(new).verify(got.body, got.headers)["type"] == "exploit.created"
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(got.body, got.headers)


async def test_test_endpoint_sends_a_signed_test_event_and_reports_the_outcome(db_url: str) -> None:
    status = 200
    async with (
        Receiver(lambda _r, _n: (status, {}, 0.0)) as rx,
        running(delivery_settings(db_url), workers=False) as (app, c),
    ):
        _, key = await user_with_key(app.state.db, tier="team")
        created = (await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": rx.url + "/t"})).json()
        r = await c.post(f"/api/v1/user-webhooks/{created['id']}/test", headers=auth(key))
        assert r.status_code == 200 and r.json()["success"] is True
        delivery = r.json()["delivery"]
        assert delivery["status"] == "succeeded" and delivery["response_status"] == 200 and delivery["attempts"] == 1
        [got] = rx.requests
        payload = Webhook(created["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "webhook.test" and payload["data"]["protocol"]
        assert got.headers["webhook-id"] == delivery["message_id"]

        status = 500
        r = await c.post(f"/api/v1/user-webhooks/{created['id']}/test", headers=auth(key))
        body = r.json()
        assert body["success"] is False and body["delivery"]["status"] == "failed"
        assert body["delivery"]["error"] == "HTTP 500" and body["delivery"]["response_status"] == 500
        shown = (await c.get(f"/api/v1/user-webhooks/{created['id']}", headers=auth(key))).json()
        assert shown["enabled"] is True and shown["consecutive_failures"] == 0  # tests never count as failures


async def test_delivery_log_is_newest_first_with_every_field_and_pages(db_url: str) -> None:
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running(settings, workers=False) as (app, c), running_worker(app.state.db, settings):
        user_id, key = await user_with_key(app.state.db, tier="team")
        hook_id, _ = await add_webhook(app.state.db, user_id, rx.url + "/log")
        exploit_ids = await ingest(app.state.db, *[report() for _ in range(3)])
        await rx.wait_for(3)
        assert await wait_until(lambda: _all_done(app.state.db, hook_id, 3))
        page = (await c.get(f"/api/v1/user-webhooks/{hook_id}/deliveries?limit=2", headers=auth(key))).json()
        assert page["has_more"] is True and len(page["data"]) == 2
        first = page["data"][0]
        assert set(first) >= {
            "id", "event_type", "exploit_id", "status", "attempts", "next_attempt_at", "response_status",
            "latency_ms", "error", "created_at", "delivered_at",
        }  # fmt: skip
        assert first["status"] == "succeeded" and first["response_status"] == 200 and first["latency_ms"] > 0
        assert first["next_attempt_at"] is None and first["delivered_at"] and first["error"] is None
        rest = await c.get(
            f"/api/v1/user-webhooks/{hook_id}/deliveries", params={"cursor": page["next_cursor"]}, headers=auth(key)
        )
        ids = [d["id"] for d in page["data"] + rest.json()["data"]]
        assert ids == sorted(ids, reverse=True) and len(ids) == 3 and rest.json()["has_more"] is False
        assert sorted(d["exploit_id"] for d in page["data"] + rest.json()["data"]) == sorted(exploit_ids)


async def _all_done(db: Any, hook_id: int, count: int) -> bool:
    rows = await deliveries(db, hook_id)
    return len(rows) == count and all(r.status == "succeeded" for r in rows)


@pytest.fixture
def dns() -> Iterator[dict[str, list[str]]]:
    answers: dict[str, list[str]] = {}

    async def resolve(host: str, port: int) -> list[str]:
        if host in answers:
            return answers[host]
        raise OSError(f"{host}: no such host")

    ssrf.set_resolver(resolve)
    yield answers
    ssrf.set_resolver(None)


async def test_dns_rebinding_is_refused_at_connect_time(db_url: str, dns: dict[str, list[str]]) -> None:
    """The name passed the check at creation (public answer); at send time it answers loopback: no connection."""
    settings = delivery_settings(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS=False, KAMIYO_WEBHOOK_RETRY_SCHEDULE="")
    async with Receiver() as rx, running(settings, workers=False) as (app, c), running_worker(app.state.db, settings):
        _, key = await user_with_key(app.state.db, tier="team")
        dns["rebind.example"] = ["93.184.216.34"]
        url = f"https://rebind.example:{rx.port}/hook"
        created = (await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": url})).json()
        dns["rebind.example"] = ["127.0.0.1"]  # the attacker's DNS now points at the server itself
        await ingest(app.state.db, report())
        assert await wait_until(lambda: _failed(app.state.db, created["id"]))
        [row] = await deliveries(app.state.db, created["id"])
        assert "loopback" in (row.error or "") and "not allowed" in (row.error or "")
        assert rx.requests == []


async def test_stored_literal_addresses_are_refused_at_connect_time(db_url: str) -> None:
    """Rows written around the API (or before a policy change) are checked again before connecting."""
    settings = delivery_settings(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS=False, KAMIYO_WEBHOOK_RETRY_SCHEDULE="")
    db = Database(db_url)
    try:
        async with Receiver() as rx, running_worker(db, settings):
            user_id, _ = await user_with_key(db, tier="team")
            plain, _ = await add_webhook(db, user_id, f"http://127.0.0.1:{rx.port}/plain")
            mapped, _ = await add_webhook(db, user_id, f"https://[::ffff:127.0.0.1]:{rx.port}/mapped")
            await ingest(db, report())
            for hook_id in (plain, mapped):
                assert await wait_until(lambda h=hook_id: _failed(db, h))
                [row] = await deliveries(db, hook_id)
                assert (row.error or "").startswith("refused:")
            assert rx.requests == []
    finally:
        await db.dispose()


async def _failed(db: Any, hook_id: int) -> bool:
    rows = await deliveries(db, hook_id)
    return len(rows) == 1 and rows[0].status == "failed"


async def test_redirects_are_not_followed(db_url: str) -> None:
    settings = delivery_settings(db_url, KAMIYO_WEBHOOK_RETRY_SCHEDULE="")
    async with (
        Receiver(lambda r, _n: (302, {"Location": "/elsewhere"}, 0.0)) as rx,
        running(settings, workers=False) as (app, _c),
    ):
        async with running_worker(app.state.db, settings):
            user_id, _ = await user_with_key(app.state.db, tier="team")
            hook_id, _ = await add_webhook(app.state.db, user_id, rx.url + "/moved")
            await ingest(app.state.db, report())
            assert await wait_until(lambda: _failed(app.state.db, hook_id))
        assert [r.path for r in rx.requests] == ["/moved"]
        [row] = await deliveries(app.state.db, hook_id)
        assert row.response_status == 302 and row.error == "HTTP 302"


async def test_import_notify_pushes_a_curated_incident_to_webhooks(db_url: str, tmp_path: Path) -> None:
    """`kamiyo import --notify` (another process) alerts through the same path; without --notify it is silent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIYO_")}
    env.update(KAMIYO_DATABASE_URL=db_url, KAMIYO_SEED="0", KAMIYO_OFFLINE="1")
    rows = [
        {"protocol": name, "chain": "ethereum", "amount_usd": 1e6, "category": "other",
         "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(), "tx_hash": "0x" + h * 64}
        for name, h in (("Quiet Import", "1"), ("Loud Import", "2"))
    ]  # fmt: skip
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running(settings, workers=False) as (app, _c), running_worker(app.state.db, settings):
        user_id, _ = await user_with_key(app.state.db, tier="team")
        hook_id, secret = await add_webhook(app.state.db, user_id, rx.url + "/imports")
        for row, flags in ((rows[0], []), (rows[1], ["--notify"])):
            path = tmp_path / f"{row['protocol'].split()[0]}.json"
            path.write_text(json.dumps([row]))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kamiyo.cli", "import", str(path), *flags, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert await asyncio.wait_for(proc.wait(), 60) == 0
        [got] = await rx.wait_for(1, timeout=10)
        await asyncio.sleep(0.5)
        assert len(rx.requests) == 1
        assert Webhook(secret).verify(got.body, got.headers)["data"]["protocol"] == "Loud Import"
        assert len(await deliveries(app.state.db, hook_id)) == 1
