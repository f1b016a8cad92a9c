"""What the webhook and channel routers share: tier limits, the delivery log, replay and test sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.models import User
from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.delivery import wakeup
from kamiyo.delivery.client import DeliveryClient, SendResult
from kamiyo.delivery.dispatch import new_message_id
from kamiyo.delivery.models import WebhookAttempt
from kamiyo.delivery.queue import WEBHOOKS, Claimed, Outcome, QueueKind, record
from kamiyo.errors import InvalidInput, KamiyoError, NotFound
from kamiyo.exploits.filters import ExploitFilters
from kamiyo.exploits.models import Exploit
from kamiyo.exploits.service import list_exploits, row_dict
from kamiyo.kit.attrs import pick
from kamiyo.kit.timeutil import iso
from kamiyo.paging import decode_cursor, encode_cursor


class LimitReached(KamiyoError):
    status = 403
    code = "limit_reached"


async def lock_owner(session: AsyncSession, user_id: int) -> None:
    """Lock the owner's row until the transaction ends, so one user's plan-limited changes count one at a time.

    PostgreSQL: `SELECT … FOR UPDATE`. SQLite has no row locks: a no-op `UPDATE` of the row takes the
    database's single write lock instead, and with it a view of every committed row. Call it just before the
    write it guards, after slow checks (a webhook URL's DNS lookup), so the lock is held only for the write.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    else:
        users: Any = User.__table__
        await session.execute(update(users).where(users.c.id == user_id).values(id=users.c.id))


async def check_limit(session: AsyncSession, model: Any, user_id: int, limit: int, tier: str, what: str) -> None:
    """403 with the limit in the message when the user already has `limit` of these.

    The owner is locked first (`lock_owner`), so concurrent creates by one user cannot all see room for one more.
    """
    await lock_owner(session, user_id)
    count = (await session.execute(select(func.count()).where(model.user_id == user_id))).scalar_one()
    if count >= limit:
        raise LimitReached(
            f"your {tier} plan allows {limit} {what}; you have {count}",
            details={"limit": limit, "current": count, "tier": tier},
        )


async def sample_exploit(session: AsyncSession) -> dict[str, Any]:
    """The newest real exploit (so test messages look like real ones), or a synthetic sample."""
    page = await list_exploits(session, ExploitFilters(), page_size=1)
    return page["data"][0] if page["data"] else synthetic_exploit()


def synthetic_exploit() -> dict[str, Any]:
    """A made-up record, serialised as every exploit is (so a test event has the API's exploit shape)."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    record = Exploit(
        id=0,
        tx_hash="0x" + "ab" * 32,
        chain="ethereum",
        protocol="Example Protocol",
        amount_usd=1_250_000.0,
        amount_status="stated",
        loss_kind="realised",
        timestamp=when,
        time_precision="day",
        category="flash_loan",
        description="A test event from Kamiyo: no real incident.",
        first_seen_at=when,
        updated_at=when,
    )
    return row_dict(record)


async def list_deliveries(
    session: AsyncSession, queue: QueueKind, target_id: int, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """Newest first, keyset-paged on id."""
    model = queue.model
    stmt = select(model).where(getattr(model, queue.target_fk) == target_id)
    if cursor:
        _, _, before = decode_cursor(cursor)
        stmt = stmt.where(model.id < before)
    rows: list[Any] = list((await session.execute(stmt.order_by(model.id.desc()).limit(limit + 1))).scalars())
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor("-id", None, rows[-1].id) if has_more and rows else None
    return {"data": [delivery_dict(r) for r in rows], "has_more": has_more, "next_cursor": next_cursor}


def delivery_dict(row: Any) -> dict[str, Any]:
    return {
        **pick(row, "id", "message_id", "event_type", "exploit_id", "status", "attempts"),
        "next_attempt_at": iso(row.next_attempt_at) if row.status == "pending" else None,
        **pick(row, "response_status", "latency_ms", "error"),
        "created_at": iso(row.created_at),
        "delivered_at": iso(row.delivered_at),
    }


async def get_delivery(session: AsyncSession, queue: QueueKind, target_id: int, delivery_id: int) -> Any:
    model = queue.model
    row = await session.get(model, delivery_id)
    if row is None or getattr(row, queue.target_fk) != target_id:
        raise NotFound(f"no delivery {delivery_id} for this {'endpoint' if queue is WEBHOOKS else 'channel'}")
    return row


async def attempts_of(session: AsyncSession, delivery_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.attempt)
    )
    return [
        {
            "attempt": a.attempt,
            "started_at": iso(a.started_at),
            "response_status": a.response_status,
            "latency_ms": a.latency_ms,
            "response_excerpt": a.response_excerpt,
            "error": a.error,
        }
        for a in rows.scalars()
    ]


async def replay(session: AsyncSession, queue: QueueKind, target_id: int, delivery_id: int, now: datetime) -> Any:
    """Make a delivery due now (same `webhook-id`); the worker sends it and records the attempt."""
    row = await get_delivery(session, queue, target_id, delivery_id)
    if row.event_id is None:
        raise InvalidInput("test deliveries cannot be replayed; send a new test instead")
    model = queue.model
    await session.execute(
        update(model)
        .where(model.id == delivery_id)
        .values(status="pending", next_attempt_at=now, delivered_at=None)
        .execution_options(synchronize_session=False)
    )
    wakeup.wake_after_commit(session, "deliveries")
    row.status, row.next_attempt_at, row.delivered_at = "pending", now, None
    return row


async def send_test(
    db: Database, settings: Settings, queue: QueueKind, target_id: int, body: str, extra: dict[str, Any]
) -> tuple[SendResult, dict[str, Any]]:
    """One attempt now, outside any long transaction: write the row (leased), send, record the outcome."""
    from kamiyo.delivery.attempt import send_one
    from kamiyo.delivery.targets import TargetCache
    from kamiyo.kit.timeutil import utcnow

    now = utcnow()
    lease = timedelta(seconds=settings.webhook_timeout + 5)
    row = queue.model(
        **{queue.target_fk: target_id},
        **extra,
        event_id=None,
        event_type="webhook.test",
        exploit_id=None,
        message_id=new_message_id(),
        body=body,
        status="pending",
        attempts=0,
        next_attempt_at=now + lease,
        created_at=now,
    )
    async with db.session() as session:
        session.add(row)
        await session.flush()
        target = (await TargetCache(settings).load(session, [_claimed(queue, row)])).get((queue.name, target_id))
    claimed = _claimed(queue, row)
    client = DeliveryClient(timeout=settings.webhook_timeout, allow_loopback=settings.allow_http_webhooks)
    try:
        result = await send_one(client, settings, claimed, target, now)
    finally:
        await client.close()
    async with db.session() as session:
        outcome = Outcome(claimed, result, now, final=True)
        await record(session, [outcome], now=utcnow(), schedule=[], disable_after=settings.webhook_disable_after)
        fresh = await session.get(queue.model, row.id)
        assert fresh is not None
        return result, delivery_dict(fresh)


def _claimed(queue: QueueKind, row: Any) -> Claimed:
    return Claimed(queue, row.id, getattr(row, queue.target_fk), row.message_id, row.body, 0, row.event_type)
