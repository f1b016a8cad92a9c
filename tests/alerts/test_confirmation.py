"""E-mail and Telegram destinations get alerts only after their owner confirms them (a link or a code sent there)."""

from __future__ import annotations

import asyncio
import email
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, text

from kamiyo import migrations
from kamiyo.alerts import confirm
from kamiyo.alerts import service as alerts
from kamiyo.alerts.schemas import EmailChannelCreate
from kamiyo.db import Database
from kamiyo.delivery.models import AlertChannel, AlertSent
from kamiyo.errors import KamiyoError
from tests.delivery.support import Receiver, add_channel, auth, delivery_settings, ingest, report, wait_until
from tests.support.app import running
from tests.support.services import free_port, redis_server
from tests.support.users import user_with_key

PUBLIC = "https://alerts.kamiyo.example"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def _text(mail: Message) -> str:
    part = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    return str(part.get_payload(decode=True).decode())


async def _rows(database: Database, channel_id: int) -> list[AlertSent]:
    async with database.session() as session:
        stmt = select(AlertSent).where(AlertSent.channel_id == channel_id).order_by(AlertSent.id)
        found = await session.execute(stmt)
        return list(found.scalars())


async def test_an_email_channel_gets_alerts_only_after_its_link_is_opened(db_url: str, smtp: tuple[Inbox, str]) -> None:
    inbox, smtp_url = smtp
    settings = delivery_settings(db_url, KAMIYO_SMTP_URL=smtp_url, KAMIYO_PUBLIC_URL=PUBLIC)
    async with running(settings, workers=True) as (app, c):
        database = app.state.db
        _, key = await user_with_key(database, tier="pro")
        r = await c.post("/api/v1/email/channels", headers=auth(key), json={"address": "soc@example.com"})
        assert r.status_code == 201 and r.json()["confirmed"] is False and r.json()["confirmation_sent_at"]
        channel_id = r.json()["id"]
        assert await wait_until(lambda: _has(inbox, "soc@example.com", 1), 10)
        [mail] = inbox.to("soc@example.com")
        assert mail["Subject"] == "[Kamiyo] Confirm this address for exploit alerts"
        [link] = re.findall(r"https://\S+", _text(mail))
        assert link.startswith(f"{PUBLIC}/alerts/confirm/")

        await ingest(database, report(protocol="Unconfirmedfi"))  # matched by nobody: the address has not confirmed
        test = await c.post(f"/api/v1/email/channels/{channel_id}/test", headers=auth(key))
        assert test.status_code == 409 and test.json()["error"]["code"] == "not_confirmed"
        await asyncio.sleep(0.5)
        assert [row.event_type for row in await _rows(database, channel_id)] == ["channel.confirmation"]

        page = await c.get(link.removeprefix(PUBLIC))  # the owner opens the link (no login needed)
        assert page.status_code == 200 and "Address confirmed" in page.text and "soc@example.com" in page.text
        again = await c.get(link.removeprefix(PUBLIC))
        assert again.status_code == 404 and "not valid" in again.text  # one time only
        shown = (await c.get(f"/api/v1/email/channels/{channel_id}", headers=auth(key))).json()
        assert shown["confirmed"] is True and shown["confirmation_sent_at"] is None

        await ingest(database, report(protocol="Confirmedfi"))
        assert await wait_until(lambda: _has(inbox, "soc@example.com", 2), 10)
        subjects = [m["Subject"] for m in inbox.to("soc@example.com")]
        assert subjects[1].startswith("[Kamiyo] Confirmedfi exploited") and len(subjects) == 2


async def _has(inbox: Inbox, address: str, count: int) -> bool:
    return len(inbox.to(address)) >= count


async def test_a_telegram_chat_is_confirmed_with_the_code_sent_to_it(db_url: str) -> None:
    async with Receiver() as bot:
        settings = delivery_settings(db_url, TELEGRAM_BOT_TOKEN="1:tok", TELEGRAM_API_BASE=bot.url)
        async with running(settings, workers=True) as (app, c):
            database = app.state.db
            _, key = await user_with_key(database, tier="pro")
            r = await c.post("/api/v1/telegram/channels", headers=auth(key), json={"chat_id": "-100777"})
            assert r.status_code == 201 and r.json()["confirmed"] is False
            base = f"/api/v1/telegram/channels/{r.json()['id']}"
            [sent] = await bot.wait_for(1)
            message = json.loads(sent.body)
            assert message["chat_id"] == "-100777"
            [code] = re.findall(r"<code>(\w+)</code>", message["text"])

            await ingest(database, report(protocol="Earlyfi"))
            await asyncio.sleep(0.5)
            assert len(bot.requests) == 1  # the code only

            wrong = await c.post(base + "/confirm", headers=auth(key), json={"code": "WRONG000"})
            assert wrong.status_code == 422 and wrong.json()["error"]["details"] == [{"field": "code"}]
            async with database.session() as session:
                stored = await session.get(AlertChannel, r.json()["id"])
                assert stored is not None and stored.confirm_failures == 1 and stored.confirmed_at is None
            ok = await c.post(base + "/confirm", headers=auth(key), json={"code": code.lower()})
            assert ok.status_code == 200 and ok.json()["confirmed"] is True

            await ingest(database, report(protocol="Laterfi"))
            got = await bot.wait_for(2)
            assert "Laterfi exploited" in json.loads(got[1].body)["text"]
            assert (await c.post(base + "/test", headers=auth(key))).status_code == 200


async def test_too_many_wrong_codes_need_a_new_one(db_url: str) -> None:
    settings = delivery_settings(db_url, TELEGRAM_BOT_TOKEN="1:tok", TELEGRAM_API_BASE="http://127.0.0.1:9")
    async with running(settings, workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier="pro")
        r = await c.post("/api/v1/telegram/channels", headers=auth(key), json={"chat_id": "-100778"})
        base = f"/api/v1/telegram/channels/{r.json()['id']}"
        for _ in range(confirm.MAX_FAILURES):
            assert (await c.post(base + "/confirm", headers=auth(key), json={"code": "NOPE2345"})).status_code == 422
        blocked = await c.post(base + "/confirm", headers=auth(key), json={"code": "NOPE2345"})
        assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "confirmation_expired"


async def test_resending_is_limited_to_once_a_minute_and_five_a_day(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url, KAMIYO_SMTP_URL="smtp://127.0.0.1:9")
    user_id, _ = await user_with_key(database, tier="pro")
    t0 = datetime.now(UTC)
    async with database.session() as session:
        data = EmailChannelCreate(address="x@example.com")
        channel = await alerts.create_channel(session, settings, user_id, "pro", "email", data, t0, confirm_base="b")
        with pytest.raises(KamiyoError) as early:
            await confirm.resend(session, channel, "b", t0 + timedelta(seconds=30))
        assert early.value.status == 429 and early.value.headers == {"Retry-After": "30"}
        for minute in range(1, confirm.SENDS_PER_DAY):
            await confirm.resend(session, channel, "b", t0 + timedelta(minutes=minute))
        with pytest.raises(KamiyoError) as capped:
            await confirm.resend(session, channel, "b", t0 + timedelta(hours=2))
        assert capped.value.status == 429
        await confirm.resend(session, channel, "b", t0 + timedelta(days=1, minutes=5))
        rows = await session.execute(select(AlertSent.body).where(AlertSent.channel_id == channel.id))
        codes = [re.findall(r"/alerts/confirm/(\w+)", r)[0] for r in rows.scalars()]
    assert len(codes) == confirm.SENDS_PER_DAY + 1 and len(set(codes)) == len(codes)


async def test_the_api_resend_is_rate_limited_and_the_link_never_follows_the_host_header(
    db_url: str, smtp: tuple[Inbox, str]
) -> None:
    inbox, smtp_url = smtp
    async with running(delivery_settings(db_url, KAMIYO_SMTP_URL=smtp_url), workers=True) as (app, c):
        _, key = await user_with_key(app.state.db, tier="pro")
        r = await c.post(
            "/api/v1/email/channels", headers=auth(key) | {"host": "evil.example"}, json={"address": "base@example.com"}
        )
        again = await c.post(f"/api/v1/email/channels/{r.json()['id']}/resend-confirmation", headers=auth(key))
        assert again.status_code == 429 and int(again.headers["retry-after"]) > 0
        assert await wait_until(lambda: _has(inbox, "base@example.com", 1), 10)
        text = _text(inbox.to("base@example.com")[0])  # KAMIYO_PUBLIC_URL unset: its local default, not the Host
        assert "http://127.0.0.1:8000/alerts/confirm/" in text and "evil.example" not in text


async def test_a_new_address_must_be_confirmed_again(db_url: str, smtp: tuple[Inbox, str]) -> None:
    inbox, smtp_url = smtp
    async with running(delivery_settings(db_url, KAMIYO_SMTP_URL=smtp_url), workers=True) as (app, c):
        _, key = await user_with_key(app.state.db, tier="pro")
        r = await c.post("/api/v1/email/channels", headers=auth(key), json={"address": "first@example.com"})
        base = f"/api/v1/email/channels/{r.json()['id']}"
        assert await wait_until(lambda: _has(inbox, "first@example.com", 1), 10)
        [code] = re.findall(r"/alerts/confirm/(\w+)", _text(inbox.to("first@example.com")[0]))
        assert (await c.post(base + "/confirm", headers=auth(key), json={"code": code})).json()["confirmed"] is True
        same = await c.patch(base, headers=auth(key), json={"address": "First@Example.com", "description": "x"})
        assert same.json()["confirmed"] is True
        async with app.state.db.session() as session:  # as if a minute passed since the confirmation was sent
            await session.execute(text("UPDATE alert_channels SET confirm_sent_at = NULL"))
        moved = await c.patch(base, headers=auth(key), json={"address": "victim@example.com"})
        assert moved.status_code == 200 and moved.json()["confirmed"] is False
        assert (await c.post(base + "/test", headers=auth(key))).status_code == 409
        assert await wait_until(lambda: _has(inbox, "victim@example.com", 1), 10)
        assert "Confirm this address" in inbox.to("victim@example.com")[0]["Subject"]


def test_channels_that_exist_at_migration_time_stay_confirmed(empty_db_url: str) -> None:
    migrations.downgrade(empty_db_url, "covering")
    now = datetime.now(UTC)

    async def before() -> None:
        database = Database(empty_db_url)
        try:
            async with database.engine.begin() as conn:  # plain SQL: the models are already a revision ahead
                await conn.execute(
                    text(
                        "INSERT INTO users (email, password_hash, tier, is_active, is_admin, created_at, updated_at)"
                        " VALUES ('old@example.com', 'x', 'pro', true, false, :t, :t)"
                    ),
                    {"t": now},
                )
                user_id = (await conn.execute(text("SELECT id FROM users"))).scalar_one()
                await conn.execute(
                    text(
                        "INSERT INTO alert_channels (user_id, kind, target_enc, target_hint, description, filters,"
                        " enabled, consecutive_failures, created_at, updated_at)"
                        " VALUES (:u, 'email', 'x', 'old@example.com', '', '{}', true, 0, :t, :t)"
                    ),
                    {"u": user_id, "t": now},
                )
        finally:
            await database.dispose()

    async def after() -> AlertChannel:
        database = Database(empty_db_url)
        try:
            async with database.session() as session:
                [channel] = (await session.execute(select(AlertChannel))).scalars()
                return channel
        finally:
            await database.dispose()

    asyncio.run(before())
    migrations.upgrade(empty_db_url)
    channel = asyncio.run(after())
    assert channel.confirmed_at is not None and abs(channel.confirmed_at - now) < timedelta(seconds=1)
    assert alerts.channel_dict(channel)["confirmed"] is True and channel.confirm_failures == 0


async def test_a_channel_created_disabled_still_gets_its_confirmation(db_url: str, smtp: tuple[Inbox, str]) -> None:
    inbox, smtp_url = smtp
    async with running(delivery_settings(db_url, KAMIYO_SMTP_URL=smtp_url), workers=True) as (app, c):
        _, key = await user_with_key(app.state.db, tier="pro")
        body = {"address": "later@example.com", "enabled": False}
        r = await c.post("/api/v1/email/channels", headers=auth(key), json=body)
        assert r.status_code == 201 and r.json()["enabled"] is False and r.json()["confirmed"] is False
        assert await wait_until(lambda: _has(inbox, "later@example.com", 1), 10)

        async def recorded() -> bool:  # the outcome is written just after the send
            return [r.status for r in await _rows(app.state.db, channel_id)] == ["succeeded"]

        channel_id = r.json()["id"]
        assert await wait_until(recorded, 10)
        [row] = await _rows(app.state.db, channel_id)
        assert (row.event_type, row.status) == ("channel.confirmation", "succeeded")


async def test_confirmations_and_replays_share_the_change_limit_across_instances(db_url: str) -> None:
    with redis_server() as redis:
        settings = delivery_settings(
            db_url,
            KAMIYO_RATE_LIMITS="on",
            KAMIYO_REDIS_URL=redis.url,
            TELEGRAM_BOT_TOKEN="1:tok",
            TELEGRAM_API_BASE="http://127.0.0.1:9",
        )
        async with running(settings, workers=False) as (app, a), running(settings, workers=False) as (_, b):
            user_id, key = await user_with_key(app.state.db, tier="pro")
            slack = await add_channel(app.state.db, user_id, "slack", "http://127.0.0.1:9/s")
            r = await a.post("/api/v1/telegram/channels", headers=auth(key), json={"chat_id": "-100779"})
            assert r.status_code == 201
            path = f"/api/v1/telegram/channels/{r.json()['id']}/confirm"
            codes = [
                (await c.post(path, headers=auth(key), json={"code": "NOPE2345"})).status_code
                for c in (a, b, a, b, a, b, a, b, b)
            ]
            assert codes == [422] * 9  # with the creation: ten changes in this minute
            replay = await a.post(f"/api/v1/slack/channels/{slack}/deliveries/1/retry", headers=auth(key))
            assert replay.status_code == 429 and int(replay.headers["retry-after"]) > 0
            assert (await b.post(f"/api/v1/slack/channels/{slack}/test", headers=auth(key))).status_code == 429
