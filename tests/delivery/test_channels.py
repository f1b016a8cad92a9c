"""Discord, Slack, Telegram and e-mail alerts: native formats against loopback receivers, rows in alerts_sent."""

from __future__ import annotations

import asyncio
import email
import json
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.delivery.models import AlertSent
from tests.delivery.support import (
    Receiver,
    add_channel,
    add_webhook,
    auth,
    delivery_settings,
    ingest,
    report,
    running_worker,
    wait_until,
)
from tests.support.app import running
from tests.support.services import free_port
from tests.support.users import user_with_key

TX = "0x" + "ab" * 32
DESCRIPTION = "Drained <script>alert(1)</script> & more"


def _incident() -> Any:
    return report(
        protocol="Alertfi",
        chain="bsc",
        amount_usd=2_500_000.0,
        category="price_oracle",
        tx_hash=TX,
        description=DESCRIPTION,
    )


async def _sent(database: Database, channel_id: int) -> list[AlertSent]:
    async with database.session() as session:
        rows = await session.execute(select(AlertSent).where(AlertSent.channel_id == channel_id))
        return list(rows.scalars())


async def _settled(database: Database, channel_id: int) -> AlertSent:
    async def done() -> bool:
        rows = await _sent(database, channel_id)
        return len(rows) == 1 and rows[0].status != "pending"

    assert await wait_until(done, 10)
    [row] = await _sent(database, channel_id)
    return row


async def test_discord_gets_an_embed(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    async with Receiver(lambda _r, _n: (204, {}, 0.0)) as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="pro")
        channel_id = await add_channel(database, user_id, "discord", rx.url + "/api/webhooks/1/tok")
        [exploit_id] = await ingest(database, _incident())
        [got] = await rx.wait_for(1)
        assert got.path == "/api/webhooks/1/tok?wait=true"
        message = json.loads(got.body)
        assert message["allowed_mentions"] == {"parse": []}
        [embed] = message["embeds"]
        assert embed["title"] == "Alertfi exploited: $2.50M lost"
        assert embed["url"].endswith(f"/app/exploits/{exploit_id}") and embed["color"] == 0xE02424
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Protocol"] == "Alertfi" and fields["Loss"] == "$2.50M"
        assert fields["Chain"] == "BNB Smart Chain" and fields["Category"] == "Price oracle manipulation"
        assert fields["Transaction"] == f"[0xabababab…ababab](https://bscscan.com/tx/{TX})"
        assert "UTC" in fields["Time"] and embed["timestamp"].endswith("Z")
        row = await _settled(database, channel_id)
        assert (row.status, row.attempts, row.response_status, row.kind) == ("succeeded", 1, 204, "discord")


async def test_slack_gets_blocks(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="pro")
        channel_id = await add_channel(database, user_id, "slack", rx.url + "/services/T1/B1/x")
        await ingest(database, _incident())
        [got] = await rx.wait_for(1)
        message = json.loads(got.body)
        assert message["text"] == "Alertfi exploited: $2.50M lost (BNB Smart Chain)"
        kinds = [b["type"] for b in message["blocks"]]
        assert kinds == ["header", "section", "section", "context"]
        fields = [f["text"] for f in message["blocks"][1]["fields"]]
        assert "*Loss*\n$2.50M" in fields and "*Chain*\nBNB Smart Chain" in fields
        assert "&lt;script&gt;" in message["blocks"][2]["text"]["text"] and "<script>" not in got.body.decode()
        links = message["blocks"][3]["elements"][0]["text"]
        assert f"<https://bscscan.com/tx/{TX}|Tx 0xabababab…ababab>" in links and "|View on Kamiyo>" in links
        assert (await _settled(database, channel_id)).status == "succeeded"


async def test_telegram_gets_html_through_the_configured_bot_api(db_url: str, database: Database) -> None:
    async with Receiver(lambda _r, _n: (200, {}, 0.0)) as rx:
        settings = delivery_settings(db_url, TELEGRAM_API_BASE=rx.url, TELEGRAM_BOT_TOKEN="123:secret-token")
        async with running_worker(database, settings):
            user_id, _ = await user_with_key(database, tier="pro")
            channel_id = await add_channel(database, user_id, "telegram", "-1001234567890")
            await ingest(database, _incident())
            [got] = await rx.wait_for(1)
            assert got.path == "/bot123:secret-token/sendMessage"
            message = json.loads(got.body)
            assert message["chat_id"] == "-1001234567890" and message["parse_mode"] == "HTML"
            text = message["text"]
            assert text.startswith("<b>🚨 Alertfi exploited: $2.50M lost</b>")
            assert "Chain: <b>BNB Smart Chain</b>" in text and f'<a href="https://bscscan.com/tx/{TX}">' in text
            assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in text and "View on Kamiyo</a>" in text
            assert (await _settled(database, channel_id)).status == "succeeded"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


async def test_email_has_text_and_html_parts(db_url: str, database: Database) -> None:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = delivery_settings(db_url, KAMIYO_SMTP_URL=f"smtp://127.0.0.1:{port}")
        async with running_worker(database, settings):
            user_id, _ = await user_with_key(database, tier="free")
            channel_id = await add_channel(database, user_id, "email", "sec@example.com")
            await ingest(database, _incident())
            row = await _settled(database, channel_id)
            assert row.status == "succeeded", row.error
    finally:
        controller.stop()
    [mail] = inbox.messages
    assert mail["To"] == "sec@example.com" and mail["Subject"] == "[Kamiyo] Alertfi exploited: $2.50M lost"
    assert mail.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in mail.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "Loss: $2.50M" in parts["text/plain"] and DESCRIPTION in parts["text/plain"]
    assert "&lt;script&gt;" in parts["text/html"] and "<script>" not in parts["text/html"]
    assert f"https://bscscan.com/tx/{TX}" in parts["text/html"]


async def test_a_failing_channel_is_retried_and_sent_once(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_WEBHOOK_RETRY_SCHEDULE="0.2,0.2")
    async with Receiver(lambda _r, n: (500 if n == 1 else 200, {}, 0.0)) as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="pro")
        channel_id = await add_channel(database, user_id, "slack", rx.url + "/services/flaky")
        await ingest(database, _incident())
        await rx.wait_for(2)
        await asyncio.sleep(0.5)
        row = await _settled(database, channel_id)
        assert (row.status, row.attempts, len(rx.requests)) == ("succeeded", 2, 2)


@pytest.mark.input_matrix
@pytest.mark.parametrize(
    ("kind", "body", "status"),
    [
        ("discord", {"webhook_url": "https://discord.com/api/webhooks/1/abc"}, 201),
        ("discord", {"webhook_url": "https://evil.example/api/webhooks/1/abc"}, 422),
        ("discord", {"webhook_url": "http://discord.com/api/webhooks/1/abc"}, 422),
        ("discord", {"webhook_url": "http://127.0.0.1:9/api/webhooks/1"}, 422),
        ("slack", {"webhook_url": "https://hooks.slack.com/services/T/B/x"}, 201),
        ("slack", {"webhook_url": "https://discord.com/api/webhooks/1/abc"}, 422),
        ("slack", {"chat_id": "1"}, 422),
        ("telegram", {"chat_id": "-100123"}, 503),
        ("email", {"address": "a@example.com"}, 503),
        ("discord", {"webhook_url": "https://discord.com/x", "filters": {"chains": ["nope"]}}, 422),
    ],
)
async def test_channel_creation_validates_the_destination(
    db_url: str, kind: str, body: dict[str, Any], status: int
) -> None:
    async with running(delivery_settings(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS=False), workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier="pro")
        r = await c.post(f"/api/v1/{kind}/channels", headers=auth(key), json=body)
        assert r.status_code == status, r.text


async def test_configured_channels_validate_chat_ids_and_addresses(db_url: str) -> None:
    settings = delivery_settings(db_url, TELEGRAM_BOT_TOKEN="1:x", KAMIYO_SMTP_URL="smtp://127.0.0.1:9")
    async with running(settings, workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier="pro")
        h = auth(key)
        assert (await c.post("/api/v1/telegram/channels", headers=h, json={"chat_id": "-100123"})).status_code == 201
        assert (
            await c.post("/api/v1/telegram/channels", headers=h, json={"chat_id": "@kamiyo_alerts"})
        ).status_code == 201
        assert (await c.post("/api/v1/telegram/channels", headers=h, json={"chat_id": "12; DROP"})).status_code == 422
        r = await c.post("/api/v1/email/channels", headers=h, json={"address": "Sec@Example.com"})
        assert r.status_code == 201 and r.json()["target"] == "sec@example.com"
        assert (await c.post("/api/v1/email/channels", headers=h, json={"address": "no-at-sign"})).status_code == 422


@pytest.mark.parametrize(("tier", "limit"), [("free", 1), ("pro", 5)])
async def test_channel_limits_count_all_kinds_together(db_url: str, tier: str, limit: int) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier=tier)
        kinds = ["discord", "slack"]
        for i in range(limit):
            kind = kinds[i % 2]
            r = await c.post(
                f"/api/v1/{kind}/channels", headers=auth(key), json={"webhook_url": "http://127.0.0.1:9/x"}
            )
            assert r.status_code == 201, r.text
        r = await c.post("/api/v1/slack/channels", headers=auth(key), json={"webhook_url": "http://127.0.0.1:9/x"})
        assert r.status_code == 403 and f"allows {limit} " in r.json()["error"]["message"]
        listed = (await c.get("/api/v1/slack/channels", headers=auth(key))).json()
        assert listed["limit"] == limit and listed["used"] == limit


async def test_channels_are_private_and_show_no_full_webhook_url(db_url: str) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        _, owner = await user_with_key(app.state.db, tier="pro")
        _, other = await user_with_key(app.state.db, tier="pro")
        url = "http://127.0.0.1:9/api/webhooks/123456/very-secret-token-value"
        r = await c.post("/api/v1/discord/channels", headers=auth(owner), json={"webhook_url": url})
        channel = r.json()
        assert "very-secret-token-value" not in r.text and channel["target"].startswith("127.0.0.1:9/api/webhooks")
        base = f"/api/v1/discord/channels/{channel['id']}"
        for method in ("GET", "PATCH", "DELETE"):
            answer = await c.request(method, base, headers=auth(other), json={} if method == "PATCH" else None)
            assert answer.status_code == 404
        assert (await c.get(f"/api/v1/slack/channels/{channel['id']}", headers=auth(owner))).status_code == 404
        r = await c.patch(base, headers=auth(owner), json={"enabled": False, "filters": {"min_amount_usd": 10}})
        assert r.json()["enabled"] is False and r.json()["filters"]["min_amount_usd"] == 10
        assert (await c.patch(base, headers=auth(owner), json={"chat_id": "1"})).status_code == 422
        assert (await c.delete(base, headers=auth(owner))).status_code == 204


async def test_channel_test_sends_now_and_reports_the_outcome(db_url: str) -> None:
    async with Receiver() as rx, running(delivery_settings(db_url), workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier="pro")
        r = await c.post("/api/v1/slack/channels", headers=auth(key), json={"webhook_url": rx.url + "/services/t"})
        channel_id = r.json()["id"]
        r = await c.post(f"/api/v1/slack/channels/{channel_id}/test", headers=auth(key))
        assert r.status_code == 200 and r.json()["success"] is True
        assert r.json()["delivery"]["event_type"] == "webhook.test" and r.json()["delivery"]["status"] == "succeeded"
        [got] = rx.requests
        assert json.loads(got.body)["blocks"][0]["text"]["text"].startswith("Kamiyo test alert")
        log = (await c.get(f"/api/v1/slack/channels/{channel_id}/deliveries", headers=auth(key))).json()
        assert [d["event_type"] for d in log["data"]] == ["webhook.test"]


async def test_the_owner_is_emailed_why_an_endpoint_was_disabled(db_url: str, database: Database) -> None:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = delivery_settings(db_url, KAMIYO_SMTP_URL=f"smtp://127.0.0.1:{port}")
        async with Receiver(lambda _r, _n: (410, {}, 0.0)) as rx, running_worker(database, settings):
            user_id, _ = await user_with_key(database, "owner@example.com", tier="team")
            await add_webhook(database, user_id, rx.url + "/gone")
            await ingest(database, _incident())
            assert await wait_until(lambda: _has_mail(inbox), 10)
    finally:
        controller.stop()
    [mail] = inbox.messages
    assert mail["To"] == "owner@example.com" and mail["Subject"] == "[Kamiyo] Your webhook endpoint was disabled"
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    assert "Reason: the endpoint answered 410 Gone" in text and rx.url + "/gone" in text


async def _has_mail(inbox: _Inbox) -> bool:
    return bool(inbox.messages)
