"""The durable queue in SQL: claim due rows with a lease, record outcomes, keep targets' health.

Claiming is one `UPDATE … WHERE id IN (SELECT … [FOR UPDATE SKIP LOCKED]) RETURNING …`: PostgreSQL
workers never block on each other's rows, SQLite serialises writers anyway. The lease is
`next_attempt_at` pushed into the future, so rows of a worker that died become due again by themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Integer, Text, bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.delivery.client import SendResult
from kamiyo.delivery.models import AlertChannel, AlertSent, DeliveryState, UserWebhook, WebhookAttempt, WebhookDelivery
from kamiyo.delivery.retry import next_delay

SUBSCRIPTIONS = "subscriptions"


@dataclass(frozen=True, slots=True)
class QueueKind:
    name: str  # "webhook" | "alert"
    model: type[WebhookDelivery] | type[AlertSent]
    target_model: type[UserWebhook] | type[AlertChannel]
    target_fk: str


WEBHOOKS = QueueKind("webhook", WebhookDelivery, UserWebhook, "webhook_id")
ALERTS = QueueKind("alert", AlertSent, AlertChannel, "channel_id")
QUEUES = (WEBHOOKS, ALERTS)


@dataclass(slots=True)
class Claimed:
    queue: QueueKind
    id: int
    target_id: int
    message_id: str
    body: str
    attempts: int
    event_type: str
    created_at: datetime | None = None  # when the row was queued: delivery latency is measured from it


@dataclass(slots=True)
class Outcome:
    claimed: Claimed
    result: SendResult
    started_at: datetime
    final: bool = False  # no retry whatever the result (target gone or disabled, test sends)
    record_attempt: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


async def next_due(session: AsyncSession, queue: QueueKind) -> datetime | None:
    table: Any = queue.model.__table__
    found = await session.execute(select(func.min(table.c.next_attempt_at)).where(table.c.status == "pending"))
    value = found.scalar()
    if isinstance(value, str):  # SQLite aggregate over a datetime column answers text
        from kamiyo.kit.timeutil import as_utc

        return as_utc(datetime.fromisoformat(value))
    return value


async def claim(
    session: AsyncSession,
    queue: QueueKind,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    exclude_targets: Collection[int] = (),
) -> list[Claimed]:
    """Lease up to `limit` due rows, oldest due first. Core statements (no ORM layer): this runs per batch."""
    table: Any = queue.model.__table__
    c = table.c
    target_col = c[queue.target_fk]
    due = select(c.id).where(c.status == "pending", c.next_attempt_at <= now)
    if exclude_targets:
        due = due.where(target_col.not_in(list(exclude_targets)))
    due = due.order_by(c.next_attempt_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(table)
        .where(c.id.in_(due.scalar_subquery()))
        .values(next_attempt_at=now + lease)
        .returning(c.id, target_col, c.message_id, c.body, c.attempts, c.event_type, c.created_at)
    )
    rows = await session.execute(stmt)
    return [Claimed(queue, *r) for r in rows]


async def release(session: AsyncSession, queue: QueueKind, ids: Sequence[int], now: datetime) -> None:
    """Give claimed rows that were not sent back to the queue: due at `now` instead of at their lease's end."""
    table: Any = queue.model.__table__
    for start in range(0, len(ids), 5000):
        chunk = list(ids[start : start + 5000])
        await session.execute(
            update(table).where(table.c.id.in_(chunk), table.c.status == "pending").values(next_attempt_at=now)
        )


def _row_values(outcome: Outcome, now: datetime, schedule: list[float]) -> dict[str, Any]:
    result, attempts = outcome.result, outcome.claimed.attempts + (1 if outcome.record_attempt else 0)
    values: dict[str, Any] = {
        "id": outcome.claimed.id,
        "attempts": attempts,
        "response_status": result.status,
        "latency_ms": result.latency_ms if outcome.record_attempt else None,
        "error": (result.disable_reason or result.error or None) if not result.ok else None,
        "delivered_at": now if result.ok else None,
    }
    if result.ok:
        values.update(status="succeeded", next_attempt_at=None)
        return values
    delay = None if outcome.final or result.disable_reason else next_delay(schedule, attempts, result.retry_after)
    if delay is None:
        values.update(status="failed", next_attempt_at=None)
    else:
        values.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
    if values["error"]:
        values["error"] = values["error"][:500]
    return values


async def record(
    session: AsyncSession, outcomes: Sequence[Outcome], *, now: datetime, schedule: list[float], disable_after: int
) -> list[tuple[QueueKind, int, str]]:
    """Write a batch of outcomes in the caller's transaction. Returns the (queue, target, reason) disabled."""
    disabled: list[tuple[QueueKind, int, str]] = []
    for queue in QUEUES:
        mine = [o for o in outcomes if o.claimed.queue is queue]
        if not mine:
            continue
        values = [_row_values(o, now, schedule) for o in mine]
        attempts = [_attempt_values(o, v) for o, v in zip(mine, values, strict=True) if o.record_attempt]
        if session.get_bind().dialect.name == "postgresql":  # one statement per batch, not one per row
            table_name = queue.model.__tablename__
            await session.execute(_bulk_update(table_name), _columns(values, ("id", *_OUTCOME_COLUMNS)))
            if queue is WEBHOOKS and attempts:
                await session.execute(_bulk_insert_attempts(), _columns(attempts, _ATTEMPT_COLUMNS))
        else:  # SQLite runs executemany in-process: already cheap per row
            await session.execute(_update_by_id(queue), [{"_id": v["id"]} | v for v in values])
            if queue is WEBHOOKS and attempts:
                await session.execute(_insert_attempts(), attempts)
        disabled += await _update_targets(session, queue, mine, values, now, disable_after)
    if disabled:
        await bump_subscriptions(session)
    return disabled


_OUTCOME_COLUMNS = ("attempts", "response_status", "latency_ms", "error", "delivered_at", "status", "next_attempt_at")


def _update_by_id(queue: QueueKind) -> Any:
    """Core executemany UPDATE keyed by id (the ORM bulk path costs more per row at 10,000 rows)."""
    table: Any = queue.model.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values({name: bindparam(name, type_=table.c[name].type) for name in _OUTCOME_COLUMNS})
    )


_ATTEMPT_COLUMNS = (
    "delivery_id",
    "attempt",
    "started_at",
    "response_status",
    "latency_ms",
    "response_excerpt",
    "error",
)


def _insert_attempts() -> Any:
    """INSERT … SELECT that skips attempts whose delivery is gone (its endpoint was deleted mid-send)."""
    attempts: Any = WebhookAttempt.__table__
    deliveries: Any = WebhookDelivery.__table__
    params = [bindparam(name, type_=attempts.c[name].type) for name in _ATTEMPT_COLUMNS]
    exists = select(deliveries.c.id).where(deliveries.c.id == bindparam("delivery_id")).exists()
    return insert(attempts).from_select(list(_ATTEMPT_COLUMNS), select(*params).where(exists))


_PG_TYPES: dict[str, Any] = {
    "id": BigInteger(),
    "delivery_id": BigInteger(),
    "attempts": Integer(),
    "attempt": Integer(),
    "response_status": Integer(),
    "latency_ms": Float(),
    "error": Text(),
    "response_excerpt": Text(),
    "status": Text(),
    "delivered_at": DateTime(timezone=True),
    "next_attempt_at": DateTime(timezone=True),
    "started_at": DateTime(timezone=True),
}


def _unnest(names: Sequence[str]) -> tuple[str, list[Any]]:
    """`unnest(:a, :b, …) AS v(a, b, …)`: one array parameter per column, so the SQL text never changes
    (compiled and prepared once, unlike a VALUES list whose length varies)."""
    params = [bindparam(name, type_=postgresql.ARRAY(_PG_TYPES[name])) for name in names]
    return f"unnest({', '.join(':' + n for n in names)}) AS v({', '.join(names)})", params


@functools.cache
def _bulk_update(table_name: str) -> Any:
    """PostgreSQL: one UPDATE … FROM unnest(arrays) per batch instead of one statement per row."""
    source, params = _unnest(("id", *_OUTCOME_COLUMNS))
    sets = ", ".join(f"{name} = v.{name}" for name in _OUTCOME_COLUMNS)
    return text(f"UPDATE {table_name} AS d SET {sets} FROM {source} WHERE d.id = v.id").bindparams(*params)


@functools.cache
def _bulk_insert_attempts() -> Any:
    source, params = _unnest(_ATTEMPT_COLUMNS)
    names = ", ".join(_ATTEMPT_COLUMNS)
    return text(
        f"INSERT INTO webhook_attempts ({names}) SELECT {names} FROM {source} "
        "WHERE EXISTS (SELECT 1 FROM webhook_deliveries AS d WHERE d.id = v.delivery_id)"
    ).bindparams(*params)


def _columns(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


def _attempt_values(outcome: Outcome, values: dict[str, Any]) -> dict[str, Any]:
    result = outcome.result
    return {
        "delivery_id": outcome.claimed.id,
        "attempt": values["attempts"],
        "started_at": outcome.started_at,
        "response_status": result.status,
        "latency_ms": result.latency_ms,
        "response_excerpt": result.excerpt[:1000] if result.excerpt else None,
        "error": values["error"],
    }


async def _update_targets(
    session: AsyncSession,
    queue: QueueKind,
    outcomes: Sequence[Outcome],
    values: Sequence[dict[str, Any]],
    now: datetime,
    disable_after: int,
) -> list[tuple[QueueKind, int, str]]:
    """Consecutive failed deliveries per target (a success resets); disable on 410-like answers or too many."""
    target = queue.target_model
    streaks: dict[int, tuple[bool, int]] = {}  # target -> (reset by a success, failures since)
    reasons: dict[int, str] = {}
    for outcome, value in zip(outcomes, values, strict=True):
        if outcome.final and not outcome.record_attempt:
            continue
        tid = outcome.claimed.target_id
        reset, count = streaks.get(tid, (False, 0))
        if value["status"] == "succeeded":
            streaks[tid] = (True, 0)
        elif value["status"] == "failed" and outcome.claimed.event_type != "webhook.test":
            streaks[tid] = (reset, count + 1)
        if outcome.result.disable_reason:
            reasons[tid] = outcome.result.disable_reason
    # A success clears the streak; targets known to have none (from the claim) need no statement at all.
    had_failures = {o.claimed.target_id for o in outcomes if o.extra.get("failures_before", 1)}
    cleared = [tid for tid, (reset, count) in streaks.items() if reset and not count and tid in had_failures]
    for start in range(0, len(cleared), 5000):  # one statement for the common case: all went well
        chunk = cleared[start : start + 5000]
        await session.execute(
            update(target).where(target.id.in_(chunk), target.consecutive_failures != 0).values(consecutive_failures=0)
        )
    failing = {tid: streak for tid, streak in streaks.items() if streak[1]}
    for tid, (reset, count) in failing.items():
        new_value: Any = count if reset else target.consecutive_failures + count
        await session.execute(update(target).where(target.id == tid).values(consecutive_failures=new_value))
    if failing:
        over = await session.execute(
            select(target.id).where(
                target.id.in_(list(failing)), target.consecutive_failures >= disable_after, target.enabled.is_(True)
            )
        )
        for tid in over.scalars():
            reasons.setdefault(tid, f"disabled after {disable_after} failed deliveries in a row")
    disabled = []
    for tid, reason in reasons.items():
        done = await session.execute(
            update(target)
            .where(target.id == tid, target.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason[:500], updated_at=now)
        )
        if getattr(done, "rowcount", 0):
            disabled.append((queue, tid, reason))
    return disabled


async def bump_subscriptions(session: AsyncSession) -> None:
    """Tell every process's matcher that subscriptions changed (checked cheaply before each dispatch)."""
    done = await session.execute(
        update(DeliveryState).where(DeliveryState.name == SUBSCRIPTIONS).values(value=DeliveryState.value + 1)
    )
    if not getattr(done, "rowcount", 0):
        session.add(DeliveryState(name=SUBSCRIPTIONS, value=1))
        await session.flush()


async def subscriptions_version(session: AsyncSession) -> int:
    found = await session.execute(select(DeliveryState.value).where(DeliveryState.name == SUBSCRIPTIONS))
    return int(found.scalar() or 0)
