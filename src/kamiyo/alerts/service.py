"""Alert channels: what differs per kind (the destination's check, its encrypted storage and masked hint, the
confirmation of e-mail and Telegram ones); the rest of a channel's life is `kamiyo.delivery.endpoints`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.alerts import confirm
from kamiyo.alerts.schemas import ChannelUpdate
from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery import service as delivery
from kamiyo.delivery.channels import RENDERERS, summarise
from kamiyo.delivery.filters import load_filters
from kamiyo.delivery.models import AlertChannel
from kamiyo.delivery.queue import ALERTS
from kamiyo.errors import InvalidInput, KamiyoError
from kamiyo.kit import ssrf
from kamiyo.kit.crypto import SecretBox
from kamiyo.kit.timeutil import iso

TARGET_FIELD = {"discord": "webhook_url", "slack": "webhook_url", "telegram": "chat_id", "email": "address"}
WEBHOOK_HOSTS = {
    "discord": {"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"},
    "slack": {"hooks.slack.com"},
}
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")


class NotConfigured(KamiyoError):
    status = 503


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details=[{"field": field, "message": message}])


def check_target(kind: str, value: str, settings: Settings) -> str:
    """The normalised destination, or 422 (503 when the server lacks the kind's settings)."""
    value = value.strip()
    field = TARGET_FIELD[kind]
    if kind in WEBHOOK_HOSTS:
        policy = ssrf.Policy(allow_loopback=settings.allow_http_webhooks)
        try:
            parts = ssrf.static_check(value, policy)
        except ssrf.UnsafeURL as exc:
            raise _invalid(field, str(exc)) from exc
        host = (parts.hostname or "").lower()
        loopback = settings.allow_http_webhooks and _is_loopback(host)
        if not loopback and (parts.scheme != "https" or host not in WEBHOOK_HOSTS[kind]):
            hosts = " or ".join(sorted(WEBHOOK_HOSTS[kind]))
            raise _invalid(field, f"must be an https:// URL on {hosts}")
        return value
    if kind == "telegram":
        if not settings.telegram_bot_token:
            raise NotConfigured("Telegram alerts are not configured on this server", code="telegram_not_configured")
        if not _CHAT_ID.match(value):
            raise _invalid(field, "a numeric chat id (e.g. -1001234567890) or an @channel name")
        return value
    if not settings.smtp_url:
        raise NotConfigured("e-mail alerts are not configured on this server", code="email_not_configured")
    if not _EMAIL.match(value):
        raise _invalid(field, "not an e-mail address")
    return value.lower()


def _is_loopback(host: str) -> bool:
    ip = ssrf.parse_ip(host)
    return host == "localhost" or (ip is not None and ip.is_loopback)


def hint(kind: str, target: str) -> str:
    """What the owner sees of the destination: webhook URLs shortened (their path is a credential)."""
    if kind in WEBHOOK_HOSTS:
        parts = urlsplit(target)
        return f"{parts.netloc}{parts.path[:24]}…"
    return target


def channel_dict(channel: AlertChannel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "kind": channel.kind,
        "target": channel.target_hint,
        "description": channel.description,
        "filters": load_filters(channel.filters).model_dump(),
        "enabled": channel.enabled,
        "confirmed": channel.confirmed_at is not None,
        "confirmation_sent_at": iso(channel.confirm_sent_at) if channel.confirmed_at is None else None,
        "disabled_reason": channel.disabled_reason,
        "consecutive_failures": channel.consecutive_failures,
        "created_at": iso(channel.created_at),
        "updated_at": iso(channel.updated_at),
    }


async def _test_body(session: AsyncSession, settings: Settings, channel: AlertChannel) -> tuple[str, dict[str, Any]]:
    """A test alert rendered as the kind renders real ones, with the newest exploit."""
    summary = summarise("webhook.test", await delivery.sample_exploit(session), settings.public_url, None)
    return orjson.dumps(RENDERERS[channel.kind](summary)).decode(), {"kind": channel.kind}


KINDS: dict[str, endpoints.EndpointKind] = {
    kind: endpoints.EndpointKind(
        name=kind,
        noun=f"{kind} channel",
        model=AlertChannel,
        queue=ALERTS,
        limit=lambda plan: plan.channels,
        limit_noun="alert channels (all kinds together)",
        as_dict=channel_dict,
        test_body=_test_body,
        ready=confirm.require_confirmed,
        channel_kind=kind,
    )
    for kind in TARGET_FIELD
}


async def create_channel(
    session: AsyncSession,
    settings: Settings,
    user_id: int,
    tier: str,
    kind: str,
    data: Any,
    now: datetime,
    *,
    confirm_base: str,
) -> AlertChannel:
    """A new channel; e-mail and Telegram ones wait for confirmation (sent to `confirm_base`'s link or as a code)."""
    target = check_target(kind, getattr(data, TARGET_FIELD[kind]), settings)
    channel: AlertChannel = await endpoints.create(
        session,
        KINDS[kind],
        user_id,
        tier,
        data,
        now,
        kind=kind,
        target_enc=SecretBox(settings.resolved_secret_key()).encrypt(target),
        target_hint=hint(kind, target),
        confirmed_at=None if confirm.needs_confirmation(kind) else now,
        confirm_sends=0,
        confirm_failures=0,
    )
    if channel.confirmed_at is None:
        await confirm.send(session, channel, confirm_base, now, new=True)
    return channel


async def update_channel(
    session: AsyncSession,
    settings: Settings,
    channel: AlertChannel,
    data: ChannelUpdate,
    now: datetime,
    *,
    confirm_base: str = "",
) -> AlertChannel:
    """Apply a change; a new e-mail or Telegram destination is unconfirmed again until its owner confirms it."""
    changes = data.model_dump(exclude_unset=True)
    field = TARGET_FIELD[channel.kind]
    for other in set(TARGET_FIELD.values()) - {field}:
        if changes.get(other) is not None:
            raise _invalid(other, f"not a field of {channel.kind} channels")
    if changes.get(field) is not None:
        target = check_target(channel.kind, changes[field], settings)
        moved = hint(channel.kind, target) != channel.target_hint
        channel.target_enc = SecretBox(settings.resolved_secret_key()).encrypt(target)
        channel.target_hint = hint(channel.kind, target)
        if moved and confirm.needs_confirmation(channel.kind):
            await confirm.send(session, channel, confirm_base, now, new=True)
    result: AlertChannel = await endpoints.update(session, AlertChannel, channel, data, now)
    return result
