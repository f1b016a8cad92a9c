"""A send that raises is a failed attempt with its error, retried by the schedule; header values stay on one line."""

from __future__ import annotations

import email
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.delivery.models import AlertSent
from tests.delivery.support import add_channel, auth, delivery_settings, ingest, report, running_worker, wait_until
from tests.support.app import running
from tests.support.services import free_port
from tests.support.users import user_with_key

PROTOCOL = "Newline\r\nBcc: victim@example.com\nFi"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


async def _rows(database: Database, channel_id: int) -> list[AlertSent]:
    async with database.session() as session:
        found = await session.execute(select(AlertSent).where(AlertSent.channel_id == channel_id))
        return list(found.scalars())


async def test_a_newline_in_a_source_protocol_is_sent_on_one_subject_line(db_url: str, database: Database) -> None:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = delivery_settings(db_url, KAMIYO_SMTP_URL=f"smtp://127.0.0.1:{port}")
        async with running_worker(database, settings):
            user_id, _ = await user_with_key(database, tier="pro")
            channel_id = await add_channel(database, user_id, "email", "sec@example.com")
            await ingest(database, report(protocol=PROTOCOL))

            async def settled() -> bool:
                rows = await _rows(database, channel_id)
                return len(rows) == 1 and rows[0].status != "pending"

            assert await wait_until(settled, 10)
            [row] = await _rows(database, channel_id)
            assert (row.status, row.attempts) == ("succeeded", 1), row.error
        async with running(settings, workers=False) as (app, client):
            owner, key = await user_with_key(app.state.db, tier="pro")
            test_channel = await add_channel(app.state.db, owner, "email", "t@example.com")  # a confirmed one
            r = await client.post(f"/api/v1/email/channels/{test_channel}/test", headers=auth(key))
            assert r.status_code == 200 and r.json()["success"] is True, r.text
    finally:
        controller.stop()
    assert [rcpt for rcpt, _ in inbox.messages] == [["sec@example.com"], ["t@example.com"]]
    for _rcpt, mail in inbox.messages:
        assert mail["Bcc"] is None and "\n" not in mail["Subject"] and "\r" not in mail["Subject"]
    assert inbox.messages[0][1]["Subject"].startswith("[Kamiyo] Newline Bcc: victim@example.com Fi exploited")


async def test_a_send_that_raises_is_a_failed_attempt_retried_by_the_schedule(db_url: str, database: Database) -> None:
    settings = delivery_settings(
        db_url, KAMIYO_SMTP_URL="smtp:///no-host-here", KAMIYO_WEBHOOK_RETRY_SCHEDULE="0.2,0.2"
    )
    async with running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="pro")
        channel_id = await add_channel(database, user_id, "email", "sec@example.com")
        await ingest(database, report())

        async def exhausted() -> bool:
            rows = await _rows(database, channel_id)
            return len(rows) == 1 and rows[0].status == "failed"

        assert await wait_until(exhausted, 10)
    [row] = await _rows(database, channel_id)
    assert row.attempts == 3 and row.error is not None and row.error.startswith("ValueError: KAMIYO_SMTP_URL")
    async with running(settings, workers=False) as (app, client):
        owner, key = await user_with_key(app.state.db, tier="pro")
        test_channel = await add_channel(app.state.db, owner, "email", "t@example.com")
        r = await client.post(f"/api/v1/email/channels/{test_channel}/test", headers=auth(key))
        assert r.status_code == 200, r.text
        assert r.json()["success"] is False and r.json()["delivery"]["error"].startswith("ValueError")
