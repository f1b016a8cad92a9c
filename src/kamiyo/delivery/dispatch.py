"""Events → delivery rows: claim undispatched events, match them, write one row per (event, target).

One transaction per batch: the events are marked dispatched in the same commit that writes their
rows, and rows are insert-or-ignore on UNIQUE(target, event), so a crash or a second dispatcher can
never produce a second delivery of an event to an endpoint.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.delivery.channels import RENDERERS, summarise
from kamiyo.delivery.channels.webhook import render_body
from kamiyo.delivery.matching import Subscription, SubscriptionIndex, Target
from kamiyo.delivery.models import AlertChannel, AlertSent, UserWebhook, WebhookDelivery
from kamiyo.delivery.queue import subscriptions_version
from kamiyo.exploits.models import ExploitEvent
from kamiyo.exploits.service import exploits_by_ids

log = logging.getLogger(__name__)
INSERT_CHUNK = 5000


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


class IndexCache:
    """The process's subscription index, rebuilt only when the shared subscriptions version moves."""

    def __init__(self) -> None:
        self.index = SubscriptionIndex([], version=-1)

    async def current(self, session: AsyncSession) -> SubscriptionIndex:
        version = await subscriptions_version(session)
        if version != self.index.version:
            self.index = await load_index(session, version)
        return self.index


async def load_index(session: AsyncSession, version: int) -> SubscriptionIndex:
    subs: list[Subscription] = []
    hooks = await session.execute(select(UserWebhook.id, UserWebhook.filters).where(UserWebhook.enabled.is_(True)))
    subs += [Subscription.from_filters(Target("webhook", i), f or {}) for i, f in hooks]
    channels = await session.execute(
        select(AlertChannel.id, AlertChannel.kind, AlertChannel.filters).where(AlertChannel.enabled.is_(True))
    )
    subs += [Subscription.from_filters(Target("alert:" + kind, i), f or {}) for i, kind, f in channels]
    log.info("subscription index rebuilt", extra={"subscriptions": len(subs), "version": version})
    return SubscriptionIndex(subs, version=version)


@dataclass(slots=True)
class DispatchStats:
    events: int = 0
    skipped_stale: int = 0
    webhook_rows: int = 0
    alert_rows: int = 0


async def has_pending_events(session: AsyncSession) -> bool:
    found = await session.execute(select(ExploitEvent.id).where(ExploitEvent.dispatched_at.is_(None)).limit(1))
    return found.first() is not None


async def _claim_events(session: AsyncSession, now: datetime, limit: int) -> list[Any]:
    pending = select(ExploitEvent.id).where(ExploitEvent.dispatched_at.is_(None)).order_by(ExploitEvent.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        pending = pending.with_for_update(skip_locked=True)
    stmt = (
        update(ExploitEvent)
        .where(ExploitEvent.id.in_(pending.scalar_subquery()))
        .values(dispatched_at=now)
        .returning(
            ExploitEvent.id, ExploitEvent.exploit_id, ExploitEvent.type, ExploitEvent.changes, ExploitEvent.created_at
        )
        .execution_options(synchronize_session=False)
    )
    return sorted((await session.execute(stmt)).all(), key=lambda r: r[0])


async def insert_ignore(session: AsyncSession, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO NOTHING, in chunks, on either backend."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    for start in range(0, len(rows), INSERT_CHUNK):
        stmt = dialect.insert(model).on_conflict_do_nothing(index_elements=keys)
        await session.execute(stmt, rows[start : start + INSERT_CHUNK])


def _rows_for_event(
    event: Any, exploit: dict[str, Any], targets: list[Target], now: datetime, public_url: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    event_id, exploit_id, event_type, changes, created_at = event
    base = {"event_id": event_id, "event_type": event_type, "exploit_id": exploit_id, "status": "pending"}
    base |= {"attempts": 0, "next_attempt_at": now, "created_at": now}
    hooks, alerts = [], []
    body: str | None = None
    rendered: dict[str, str] = {}
    for target in targets:
        if target.kind == "webhook":
            body = body or render_body(event_type, exploit, created_at)
            hooks.append(base | {"webhook_id": target.id, "message_id": new_message_id(), "body": body})
            continue
        kind = target.kind.removeprefix("alert:")
        if kind not in rendered:
            from kamiyo.kit.jsonresp import dumps

            summary = summarise(event_type, exploit, public_url, changes)
            rendered[kind] = dumps(RENDERERS[kind](summary)).decode()
        alerts.append(
            base | {"channel_id": target.id, "kind": kind, "message_id": new_message_id(), "body": rendered[kind]}
        )
    return hooks, alerts


async def dispatch_events(
    session: AsyncSession,
    cache: IndexCache,
    *,
    now: datetime,
    max_age: timedelta,
    public_url: str,
    limit: int = 100,
) -> DispatchStats:
    """Match one batch of undispatched events and queue their deliveries, in the caller's transaction."""
    stats = DispatchStats()
    events = await _claim_events(session, now, limit)
    if not events:
        return stats
    stats.events = len(events)
    fresh = [e for e in events if e[4] >= now - max_age]
    stats.skipped_stale = len(events) - len(fresh)
    index = await cache.current(session)
    exploits = {e["id"]: e for e in await exploits_by_ids(session, list({e[1] for e in fresh}))}
    hooks: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for event in fresh:
        exploit = exploits.get(event[1])
        if exploit is None:
            continue
        more_hooks, more_alerts = _rows_for_event(event, exploit, index.match(exploit), now, public_url)
        hooks += more_hooks
        alerts += more_alerts
    if hooks:
        await insert_ignore(session, WebhookDelivery, hooks, ["webhook_id", "event_id"])
    if alerts:
        await insert_ignore(session, AlertSent, alerts, ["channel_id", "event_id"])
    stats.webhook_rows, stats.alert_rows = len(hooks), len(alerts)
    return stats
