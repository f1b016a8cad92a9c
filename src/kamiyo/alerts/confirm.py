"""E-mail and Telegram destinations receive alerts only after their owner confirms them (CONTRACT §13).

When such a channel is created, or its destination changes, it waits for confirmation: a one-time link
(e-mail) or code (Telegram) is queued to the destination as a delivery row, so the delivery worker sends
it after the commit, retries it like an alert and shows it in the channel's log. Only its SHA-256 is
kept on the channel. Until confirmed, the channel is matched for no alert, and test sends and replays are
refused. Sending another is limited per channel (once a minute, five a day); wrong codes are counted and
a code stops working after ten of them. Channels that existed before this rule stay confirmed.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.delivery import wakeup
from kamiyo.delivery.dispatch import new_message_id
from kamiyo.delivery.models import AlertChannel, AlertSent
from kamiyo.delivery.queue import bump_subscriptions
from kamiyo.delivery.targets import CONFIRMATION
from kamiyo.errors import Conflict, KamiyoError

KINDS = frozenset({"email", "telegram"})
EVENT = CONFIRMATION
RESEND_INTERVAL = timedelta(minutes=1)
SENDS_PER_DAY = 5
MAX_FAILURES = 10
LINK_PATH = "/alerts/confirm/"
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: codes are typed by hand
_LENGTH = {"telegram": 8, "email": 32}  # about 40 bits against 10 tries; the link is never typed


class NotConfirmed(Conflict):
    code = "not_confirmed"


class TooSoon(KamiyoError):
    status = 429


def needs_confirmation(kind: str) -> bool:
    return kind in KINDS


def normalise(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def digest(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def link_base(settings: Settings) -> str:
    """Where confirmation links point: KAMIYO_PUBLIC_URL (never the request's Host header, which a client sets)."""
    return settings.public_url


def waiting_message(kind: str) -> str:
    what = "open the link in the e-mail sent to it" if kind == "email" else "enter the code sent to the chat"
    return f"this channel is waiting for confirmation: {what} first"


def require_confirmed(channel: AlertChannel) -> None:
    if channel.confirmed_at is None:
        raise NotConfirmed(waiting_message(channel.kind))


def message(kind: str, code: str, hint: str, base: str) -> dict[str, Any]:
    """The rendered confirmation, in the shape the kind's sender takes (as alert bodies are stored)."""
    if kind == "telegram":
        text = (
            "<b>Kamiyo</b>: someone asked to send exploit alerts to this chat.\n\n"
            f"Confirmation code: <code>{code}</code>\n\n"
            "Enter it on the Kamiyo dashboard (Alerts, this channel) to start receiving alerts here. "
            "If you did not ask for this, ignore this message: nothing else is sent."
        )
        return {"text": text, "parse_mode": "HTML", "disable_web_page_preview": True}
    link = f"{base.rstrip('/')}{LINK_PATH}{code}"
    text = (
        f"Someone asked Kamiyo to send exploit alerts to {hint}.\n\n"
        f"To receive them, open this link:\n\n{link}\n\n"
        "If you did not ask for this, ignore this message: nothing else is sent unless the link is opened.\n"
    )
    e = html.escape
    body = (
        f"<html><body style='font-family:sans-serif'><p>Someone asked Kamiyo to send exploit alerts to {e(hint)}.</p>"
        f"<p><a href='{e(link)}'>Confirm this address</a></p><p>If you did not ask for this, ignore this message: "
        "nothing else is sent unless the link is opened.</p></body></html>"
    )
    return {"subject": "[Kamiyo] Confirm this address for exploit alerts", "text": text, "html": body}


def _check_rate(channel: AlertChannel, now: datetime, *, daily: bool) -> None:
    sent = channel.confirm_sent_at
    if sent is None:
        return
    wait = RESEND_INTERVAL - (now - sent)
    if daily and channel.confirm_sends >= SENDS_PER_DAY:
        wait = max(wait, timedelta(days=1) - (now - sent))
    if wait > timedelta(0):
        seconds = max(1, int(wait.total_seconds() + 0.999))
        raise TooSoon(
            f"a confirmation was sent recently; send another in {seconds}s",
            details={"retry_after": seconds},
            headers={"Retry-After": str(seconds)},
        )


async def send(session: AsyncSession, channel: AlertChannel, base: str, now: datetime, *, new: bool) -> None:
    """Make a new code (the previous one stops working) and queue it to the destination.

    `new`: the destination was just given (created or changed): the daily count starts over, the
    once-a-minute limit still holds (so switching destinations sends no faster).
    """
    _check_rate(channel, now, daily=not new)
    if new or (channel.confirm_sent_at is not None and now - channel.confirm_sent_at >= timedelta(days=1)):
        channel.confirm_sends = 0
    code = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH[channel.kind]))
    channel.confirmed_at = None
    channel.confirm_hash = digest(code)
    channel.confirm_sent_at = now
    channel.confirm_sends += 1
    channel.confirm_failures = 0
    body = orjson.dumps(message(channel.kind, code, channel.target_hint, base)).decode()
    session.add(
        AlertSent(
            channel_id=channel.id,
            kind=channel.kind,
            event_id=None,
            event_type=EVENT,
            exploit_id=None,
            message_id=new_message_id(),
            body=body,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    await session.flush()
    wakeup.wake_after_commit(session, "deliveries")


async def resend(session: AsyncSession, channel: AlertChannel, base: str, now: datetime) -> None:
    if channel.confirmed_at is not None:
        raise Conflict("this channel is already confirmed", code="already_confirmed")
    await send(session, channel, base, now, new=False)


async def confirm(session: AsyncSession, channel: AlertChannel, code: str, now: datetime) -> bool:
    """Confirm with `code`; False when it is wrong (the caller records the failure: see `count_failure`)."""
    if channel.confirmed_at is not None:
        return True
    if channel.confirm_hash is None or channel.confirm_failures >= MAX_FAILURES:
        raise Conflict("too many wrong codes: send a new confirmation", code="confirmation_expired")
    if not hmac.compare_digest(digest(code), channel.confirm_hash):
        return False
    channel.confirmed_at, channel.confirm_hash, channel.confirm_failures = now, None, 0
    channel.updated_at = now
    await session.flush()
    await bump_subscriptions(session)  # matching picks the channel up
    return True


async def count_failure(db: Database, channel_id: int) -> None:
    """One wrong code, in its own transaction (the request's rolls back with its 422)."""
    async with db.session() as session:
        await session.execute(
            update(AlertChannel)
            .where(AlertChannel.id == channel_id)
            .values(confirm_failures=AlertChannel.confirm_failures + 1)
        )


async def by_link(session: AsyncSession, code: str) -> AlertChannel | None:
    """The e-mail channel whose pending confirmation link carries `code`."""
    if len(normalise(code)) != _LENGTH["email"]:
        return None
    found = await session.execute(
        select(AlertChannel).where(AlertChannel.confirm_hash == digest(code), AlertChannel.kind == "email")
    )
    return found.scalars().first()
