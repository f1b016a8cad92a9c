"""Webhook endpoints of one user: create (tier limit, SSRF check, new secret), read, change, delete, rotate.

Every change bumps the shared subscriptions version, so each process's matcher rebuilds its index
before the next event. Secrets are stored encrypted; the plain secret leaves only in create/rotate.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.delivery.filters import SubscriptionFilters, load_filters
from kamiyo.delivery.models import UserWebhook
from kamiyo.delivery.plan_limits import check_room_to_enable
from kamiyo.delivery.queue import bump_subscriptions
from kamiyo.delivery.service import check_limit
from kamiyo.errors import InvalidInput, NotFound
from kamiyo.kit import ssrf
from kamiyo.kit.crypto import SecretBox, new_webhook_secret
from kamiyo.kit.timeutil import iso
from kamiyo.tiers import get_tier
from kamiyo.webhooks.schemas import WebhookCreate, WebhookUpdate

ROTATION_WINDOW = timedelta(hours=24)


async def checked_url(url: str, settings: Settings) -> str:
    """422 unless the URL is https (or loopback http when allowed) and resolves only to public addresses."""
    url = url.strip()
    try:
        return await ssrf.check_url(url, ssrf.Policy(allow_loopback=settings.allow_http_webhooks))
    except ssrf.UnsafeURL as exc:
        raise InvalidInput(f"url: {exc}", details=[{"field": "url", "message": str(exc)}]) from exc


def _filters(filters: SubscriptionFilters | None) -> tuple[dict[str, Any], float | None]:
    value = filters or SubscriptionFilters()
    return value.stored(), value.min_amount_usd


def webhook_dict(hook: UserWebhook, now: datetime) -> dict[str, Any]:
    expires = hook.previous_secret_expires_at
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


async def create_webhook(
    session: AsyncSession, settings: Settings, user_id: int, tier: str, data: WebhookCreate, now: datetime
) -> tuple[UserWebhook, str]:
    plan = get_tier(tier)
    url = await checked_url(data.url, settings)
    await check_limit(session, UserWebhook, user_id, plan.webhooks, plan.name, "webhook endpoints")
    filters, min_amount = _filters(data.filters)
    secret = new_webhook_secret()
    hook = UserWebhook(
        user_id=user_id,
        url=url,
        description=data.description.strip(),
        filters=filters,
        min_amount_usd=min_amount,
        enabled=data.enabled,
        consecutive_failures=0,
        secret_enc=SecretBox(settings.resolved_secret_key()).encrypt(secret),
        created_at=now,
        updated_at=now,
    )
    session.add(hook)
    await session.flush()
    await bump_subscriptions(session)
    return hook, secret


async def list_webhooks(session: AsyncSession, user_id: int) -> list[UserWebhook]:
    rows = await session.execute(select(UserWebhook).where(UserWebhook.user_id == user_id).order_by(UserWebhook.id))
    return list(rows.scalars())


async def get_webhook(session: AsyncSession, user_id: int, webhook_id: int) -> UserWebhook:
    """The user's own endpoint; another user's is indistinguishable from a missing one (404)."""
    hook = await session.get(UserWebhook, webhook_id)
    if hook is None or hook.user_id != user_id:
        raise NotFound(f"no webhook endpoint {webhook_id}")
    return hook


async def update_webhook(
    session: AsyncSession, settings: Settings, hook: UserWebhook, data: WebhookUpdate, now: datetime
) -> UserWebhook:
    changes = data.model_dump(exclude_unset=True)
    if "url" in changes:
        if data.url is None:
            raise InvalidInput("url: may not be null", details=[{"field": "url"}])
        hook.url = await checked_url(data.url, settings)
    if data.description is not None:
        hook.description = data.description.strip()
    if "filters" in changes:
        hook.filters, hook.min_amount_usd = _filters(data.filters)
    if data.enabled is not None:
        if data.enabled and not hook.enabled:
            await check_room_to_enable(session, UserWebhook, hook.user_id)
            hook.disabled_reason, hook.consecutive_failures = None, 0
        hook.enabled = data.enabled
    hook.updated_at = now
    await session.flush()
    await bump_subscriptions(session)
    return hook


async def delete_webhook(session: AsyncSession, hook: UserWebhook) -> None:
    await session.delete(hook)
    await session.flush()
    await bump_subscriptions(session)


async def rotate_secret(session: AsyncSession, settings: Settings, hook: UserWebhook, now: datetime) -> str:
    """A new secret; the current one keeps signing beside it for 24 h (a second rotation drops the oldest)."""
    secret = new_webhook_secret()
    hook.previous_secret_enc = hook.secret_enc
    hook.previous_secret_expires_at = now + ROTATION_WINDOW
    hook.secret_enc = SecretBox(settings.resolved_secret_key()).encrypt(secret)
    hook.updated_at = now
    await session.flush()
    return secret
