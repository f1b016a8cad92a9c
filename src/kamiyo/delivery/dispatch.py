"""Events → delivery rows: claim undispatched events, match them, write one row per (event, target).

One transaction per batch: the events are marked dispatched in the same commit that writes their
rows, and rows are insert-or-ignore on UNIQUE(target, event), so a crash or a second dispatcher can
never produce a second delivery of an event to an endpoint.
"""

from __future__ import annotations

import base64
import functools
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Text, bindparam, select, text, update
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
PG_INSERT_CHUNK = 20_000  # rows per `unnest` statement (a few arrays, whatever the body size)


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def new_message_ids(count: int) -> list[str]:
    """`count` ids like `new_message_id`, from one call to the random source (18 bytes = 24 base64 chars each)."""
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(18 * count)).decode()
    return ["msg_" + encoded[i : i + 24] for i in range(0, 24 * count, 24)]


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
    channels = await session.execute(  # e-mail and Telegram destinations only once their owner confirmed them
        select(AlertChannel.id, AlertChannel.kind, AlertChannel.filters).where(
            AlertChannel.enabled.is_(True), AlertChannel.confirmed_at.is_not(None)
        )
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


@dataclass(slots=True)
class WebhookRows:
    """The webhook rows of one dispatch batch as columns: one body per event, not one per row.

    An event matching 10,000 endpoints is 10,000 (endpoint, message id) pairs and one body, so on
    PostgreSQL the body crosses the wire once (arrays into `unnest`) instead of 10,000 times.
    """

    events: list[tuple[int, str, int, str]] = field(default_factory=list)  # id, type, exploit id, body
    webhook_ids: list[int] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    event_index: list[int] = field(default_factory=list)  # 1-based position in `events` (SQL arrays)

    def add(self, event_id: int, event_type: str, exploit_id: int, body: str, webhook_ids: list[int]) -> None:
        self.events.append((event_id, event_type, exploit_id, body))
        self.webhook_ids += webhook_ids
        self.message_ids += new_message_ids(len(webhook_ids))
        self.event_index += [len(self.events)] * len(webhook_ids)

    def __len__(self) -> int:
        return len(self.webhook_ids)

    def dicts(self, now: datetime) -> list[dict[str, Any]]:
        base = {"status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
        events = [base | {"event_id": e[0], "event_type": e[1], "exploit_id": e[2], "body": e[3]} for e in self.events]
        return [
            events[i - 1] | {"webhook_id": w, "message_id": m}
            for w, m, i in zip(self.webhook_ids, self.message_ids, self.event_index, strict=True)
        ]


@functools.cache
def _pg_insert_webhook_rows() -> Any:
    arrays: dict[str, Any] = {"event_ids": BigInteger, "event_types": Text, "exploit_ids": BigInteger, "bodies": Text}
    arrays |= {"webhook_ids": BigInteger, "message_ids": Text, "event_index": Integer}
    params = [bindparam(name, type_=postgresql.ARRAY(kind)) for name, kind in arrays.items()]
    return text(
        "INSERT INTO webhook_deliveries (webhook_id, message_id, event_id, event_type, exploit_id, body, status, "
        "attempts, next_attempt_at, created_at) "
        "SELECT v.webhook_id, v.message_id, (:event_ids)[v.e], (:event_types)[v.e], (:exploit_ids)[v.e], "
        "(:bodies)[v.e], 'pending', 0, :now, :now "
        "FROM unnest(:webhook_ids, :message_ids, :event_index) AS v(webhook_id, message_id, e) "
        "ON CONFLICT (webhook_id, event_id) DO NOTHING"
    ).bindparams(*params, bindparam("now", type_=DateTime(timezone=True)))


async def insert_webhook_rows(session: AsyncSession, rows: WebhookRows, now: datetime) -> None:
    """Insert-or-ignore on UNIQUE(webhook, event): one `unnest` statement per chunk on PostgreSQL."""
    if session.get_bind().dialect.name != "postgresql":
        await insert_ignore(session, WebhookDelivery, rows.dicts(now), ["webhook_id", "event_id"])
        return
    columns = list(zip(*rows.events, strict=True))
    events = dict(zip(("event_ids", "event_types", "exploit_ids", "bodies"), map(list, columns), strict=True))
    for start in range(0, len(rows), PG_INSERT_CHUNK):
        end = start + PG_INSERT_CHUNK
        chunk = {
            "webhook_ids": rows.webhook_ids[start:end],
            "message_ids": rows.message_ids[start:end],
            "event_index": rows.event_index[start:end],
        }
        await session.execute(_pg_insert_webhook_rows(), events | chunk | {"now": now})


def _rows_for_event(
    event: Any, exploit: dict[str, Any], targets: list[Target], now: datetime, public_url: str, hooks: WebhookRows
) -> list[dict[str, Any]]:
    """Adds the event's webhook rows to `hooks`; returns its channel rows (one rendering per channel kind)."""
    event_id, exploit_id, event_type, changes, created_at = event
    base = {"event_id": event_id, "event_type": event_type, "exploit_id": exploit_id, "status": "pending"}
    base |= {"attempts": 0, "next_attempt_at": now, "created_at": now}
    webhook_ids = [t.id for t in targets if t.kind == "webhook"]
    if webhook_ids:
        hooks.add(event_id, event_type, exploit_id, render_body(event_type, exploit, created_at), webhook_ids)
    alerts = []
    rendered: dict[str, str] = {}
    for target in targets:
        if target.kind == "webhook":
            continue
        kind = target.kind.removeprefix("alert:")
        if kind not in rendered:
            from kamiyo.kit.jsonresp import dumps

            summary = summarise(event_type, exploit, public_url, changes)
            rendered[kind] = dumps(RENDERERS[kind](summary)).decode()
        alerts.append(
            base | {"channel_id": target.id, "kind": kind, "message_id": new_message_id(), "body": rendered[kind]}
        )
    return alerts


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
    hooks = WebhookRows()
    alerts: list[dict[str, Any]] = []
    for event in fresh:
        exploit = exploits.get(event[1])
        if exploit is None:
            continue
        alerts += _rows_for_event(event, exploit, index.match(exploit), now, public_url, hooks)
    if hooks:
        await insert_webhook_rows(session, hooks, now)
    if alerts:
        await insert_ignore(session, AlertSent, alerts, ["channel_id", "event_id"])
    stats.webhook_rows, stats.alert_rows = len(hooks), len(alerts)
    return stats
