"""One service for a user's delivery endpoints: webhook endpoints and alert channels alike.

Both are rows a user owns that deliveries go to: created within a tier limit, read, changed (description,
filters, enabled), deleted, sent a test, replayed. What differs is injected as an `EndpointKind` (the
table and queue, the limit, the answer's shape, how a test message is rendered, whether it may be sent
to yet); how a destination is checked and stored stays with the kind (`webhooks.service`,
`alerts.service`). Every change bumps the shared subscriptions version, so each process's matcher
rebuilds its index before the next event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.delivery import service as delivery
from kamiyo.delivery.client import SendResult
from kamiyo.delivery.filters import SubscriptionFilters
from kamiyo.delivery.plan_limits import check_room_to_enable
from kamiyo.delivery.queue import QueueKind, bump_subscriptions
from kamiyo.errors import NotFound
from kamiyo.tiers import Tier, get_tier

TestBody = Callable[[AsyncSession, Settings, Any], Awaitable[tuple[str, dict[str, Any]]]]


def _always_ready(_row: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class EndpointIds:
    """How one kind's API routes and pages name its ids in paths and docs."""

    name: str  # the endpoint's id in paths: "webhook_id", "channel_id"
    doc: str
    delivery_doc: str  # one of its deliveries' id


@dataclass(frozen=True, slots=True)
class EndpointKind:
    """What one kind of endpoint does its own way; the rest of its life is this module's."""

    name: str  # "webhook", or a channel kind ("discord", "telegram", "slack", "email")
    noun: str  # as errors name one: "webhook endpoint", "discord channel"
    model: Any  # the table: UserWebhook or AlertChannel
    queue: QueueKind
    limit: Callable[[Tier], int]  # how many the tier allows
    limit_noun: str  # what the limit counts, as the 403 says it
    as_dict: Callable[[Any], dict[str, Any]]  # the API's answer for one
    test_body: TestBody  # the rendered test message and the delivery row's extra columns
    ready: Callable[[Any], None] = _always_ready  # raises when it may not be sent to yet (unconfirmed)
    channel_kind: str | None = None  # alert channels share a table: their `kind` column


async def get(session: AsyncSession, kind: EndpointKind, user_id: int, endpoint_id: int) -> Any:
    """The user's own endpoint of this kind; another user's is indistinguishable from a missing one (404)."""
    row = await session.get(kind.model, endpoint_id)
    if row is None or row.user_id != user_id or (kind.channel_kind and row.kind != kind.channel_kind):
        raise NotFound(f"no {kind.noun} {endpoint_id}")
    return row


async def list_owned(session: AsyncSession, model: Any, user_id: int) -> list[Any]:
    """All of the user's rows of the table (every channel kind together), oldest first."""
    rows = await session.execute(select(model).where(model.user_id == user_id).order_by(model.id))
    return list(rows.scalars())


async def create(
    session: AsyncSession, spec: EndpointKind, user_id: int, tier: str, data: Any, now: datetime, **columns: Any
) -> Any:
    """A new endpoint within the tier's limit; `columns` are the kind's own (its checked destination)."""
    plan = get_tier(tier)
    await delivery.check_limit(session, spec.model, user_id, spec.limit(plan), plan.name, spec.limit_noun)
    filters = data.filters or SubscriptionFilters()
    row = spec.model(
        user_id=user_id,
        description=data.description.strip(),
        filters=filters.stored(),
        min_amount_usd=filters.min_amount_usd,
        enabled=data.enabled,
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
        **columns,
    )
    session.add(row)
    await session.flush()
    await bump_subscriptions(session)
    return row


async def update(session: AsyncSession, model: Any, row: Any, data: BaseModel, now: datetime) -> Any:
    """Apply the shared fields of an update body; re-enabling checks the plan and clears the failure state."""
    changes = data.model_dump(exclude_unset=True)
    if changes.get("description") is not None:
        row.description = changes["description"].strip()
    if "filters" in changes:
        filters = getattr(data, "filters", None) or SubscriptionFilters()
        row.filters, row.min_amount_usd = filters.stored(), filters.min_amount_usd
    enabled = changes.get("enabled")
    if enabled is not None:
        if enabled and not row.enabled:
            await check_room_to_enable(session, model, row.user_id)
            row.disabled_reason, row.consecutive_failures = None, 0
        row.enabled = enabled
    row.updated_at = now
    await session.flush()
    await bump_subscriptions(session)
    return row


async def delete(session: AsyncSession, row: Any) -> None:
    await session.delete(row)
    await session.flush()
    await bump_subscriptions(session)


async def send_test(
    db: Database, settings: Settings, session: AsyncSession, kind: EndpointKind, row: Any
) -> tuple[SendResult, dict[str, Any]]:
    """A test message now, rendered as the kind renders real ones (with the newest exploit)."""
    kind.ready(row)
    body, extra = await kind.test_body(session, settings, row)
    return await delivery.send_test(db, settings, kind.queue, row.id, body, extra)


async def replay(session: AsyncSession, kind: EndpointKind, row: Any, delivery_id: int, now: datetime) -> Any:
    """Make one delivery due again now (same message id)."""
    kind.ready(row)
    return await delivery.replay(session, kind.queue, row.id, delivery_id, now)
