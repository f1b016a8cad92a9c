"""Webhook endpoints: what differs from alert channels (the URL check, the signing secret and its rotation).

The rest of an endpoint's life (limits, changes, deletion, tests, replays) is `kamiyo.delivery.endpoints`.
Secrets are stored encrypted; the plain secret leaves only in create/rotate.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery import service as delivery
from kamiyo.delivery.channels.webhook import render_body
from kamiyo.delivery.filters import load_filters
from kamiyo.delivery.models import UserWebhook
from kamiyo.delivery.queue import WEBHOOKS
from kamiyo.errors import InvalidInput
from kamiyo.kit import ssrf
from kamiyo.kit.crypto import SecretBox, new_webhook_secret
from kamiyo.kit.timeutil import iso, utcnow
from kamiyo.webhooks.schemas import WebhookCreate, WebhookUpdate

ROTATION_WINDOW = timedelta(hours=24)


async def checked_url(url: str, settings: Settings) -> str:
    """422 unless the URL is https (or loopback http when allowed) and resolves only to public addresses."""
    url = url.strip()
    try:
        return await ssrf.check_url(url, ssrf.Policy(allow_loopback=settings.allow_http_webhooks))
    except ssrf.UnsafeURL as exc:
        raise InvalidInput(f"url: {exc}", details=[{"field": "url", "message": str(exc)}]) from exc


def webhook_dict(hook: UserWebhook, now: datetime | None = None) -> dict[str, Any]:
    expires, now = hook.previous_secret_expires_at, now or utcnow()
    return {
        "id": hook.id,
        "url": hook.url,
        "description": hook.description,
        "filters": load_filters(hook.filters).model_dump(),
        "enabled": hook.enabled,
        "disabled_reason": hook.disabled_reason,
        "consecutive_failures": hook.consecutive_failures,
        "previous_secret_expires_at": iso(expires) if expires and expires > now else None,
        "created_at": iso(hook.created_at),
        "updated_at": iso(hook.updated_at),
    }


async def _test_body(session: AsyncSession, _settings: Settings, _hook: UserWebhook) -> tuple[str, dict[str, Any]]:
    """A signed `webhook.test` event with the newest exploit as `data`."""
    return render_body("webhook.test", await delivery.sample_exploit(session), utcnow()), {}


WEBHOOK = endpoints.EndpointKind(
    name="webhook",
    noun="webhook endpoint",
    model=UserWebhook,
    queue=WEBHOOKS,
    limit=lambda plan: plan.webhooks,
    limit_noun="webhook endpoints",
    as_dict=webhook_dict,
    test_body=_test_body,
)


async def create_webhook(
    session: AsyncSession, settings: Settings, user_id: int, tier: str, data: WebhookCreate, now: datetime
) -> tuple[UserWebhook, str]:
    """A new endpoint and its plain signing secret (checked URL first: the DNS look-up is slow, the limit locks)."""
    url = await checked_url(data.url, settings)
    secret = new_webhook_secret()
    secret_enc = SecretBox(settings.resolved_secret_key()).encrypt(secret)
    hook = await endpoints.create(session, WEBHOOK, user_id, tier, data, now, url=url, secret_enc=secret_enc)
    return hook, secret


async def update_webhook(
    session: AsyncSession, settings: Settings, hook: UserWebhook, data: WebhookUpdate, now: datetime
) -> UserWebhook:
    if "url" in data.model_fields_set:
        if data.url is None:
            raise InvalidInput("url: may not be null", details=[{"field": "url"}])
        hook.url = await checked_url(data.url, settings)
    result: UserWebhook = await endpoints.update(session, UserWebhook, hook, data, now)
    return result


async def rotate_secret(session: AsyncSession, settings: Settings, hook: UserWebhook, now: datetime) -> str:
    """A new secret; the current one keeps signing beside it for 24 h (a second rotation drops the oldest)."""
    secret = new_webhook_secret()
    hook.previous_secret_enc = hook.secret_enc
    hook.previous_secret_expires_at = now + ROTATION_WINDOW
    hook.secret_enc = SecretBox(settings.resolved_secret_key()).encrypt(secret)
    hook.updated_at = now
    await session.flush()
    return secret
