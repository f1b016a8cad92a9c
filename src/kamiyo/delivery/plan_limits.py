"""A plan's endpoint and channel limits, kept when the plan changes, not only when something is created.

A downgrade (a cancelled subscription, an operator's `kamiyo users set-tier`) disables the newest enabled
webhook endpoints and alert channels beyond the new plan's limits, with a `disabled_reason` that says so;
nothing is deleted, so an upgrade re-enables them (oldest first, up to the new limits). Turning an endpoint
back on by hand is refused while the plan has no room for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.models import User
from kamiyo.accounts.service import check_tier
from kamiyo.delivery.models import AlertChannel, UserWebhook
from kamiyo.delivery.queue import bump_subscriptions
from kamiyo.delivery.service import LimitReached, lock_owner
from kamiyo.kit.timeutil import utcnow
from kamiyo.tiers import Tier, get_tier

REASON_PREFIX = "plan limit:"
WHAT = {UserWebhook: "webhook endpoints", AlertChannel: "alert channels"}


@dataclass
class PlanChange:
    disabled: int = 0
    enabled: int = 0


def _limit(plan: Tier, model: Any) -> int:
    return plan.webhooks if model is UserWebhook else plan.channels


def _reason(plan: Tier, model: Any) -> str:
    return f"{REASON_PREFIX} the {plan.name} plan allows {_limit(plan, model)} {WHAT[model]}"


async def apply_plan(session: AsyncSession, user_id: int, tier: str) -> PlanChange:
    """Bring the user's enabled endpoints and channels within `tier`'s limits (never commits)."""
    plan = get_tier(tier)
    change = PlanChange()
    now = utcnow()
    await lock_owner(session, user_id)  # no create or enable of this user's runs in between
    models: tuple[type[UserWebhook] | type[AlertChannel], ...] = (UserWebhook, AlertChannel)
    for model in models:
        found = await session.execute(select(model).where(model.user_id == user_id).order_by(model.id))
        rows: list[Any] = list(found.scalars())
        room = _limit(plan, model) - sum(1 for row in rows if row.enabled)
        for row in reversed(rows):  # over the limit: the newest go first
            if room >= 0:
                break
            if row.enabled:
                row.enabled, row.disabled_reason, row.updated_at = False, _reason(plan, model), now
                change.disabled += 1
                room += 1
        for row in rows:  # room again: what the plan limit turned off comes back, oldest first
            if room <= 0:
                break
            if not row.enabled and (row.disabled_reason or "").startswith(REASON_PREFIX):
                row.enabled, row.disabled_reason, row.consecutive_failures, row.updated_at = True, None, 0, now
                change.enabled += 1
                room -= 1
    if change.disabled or change.enabled:
        await session.flush()
        await bump_subscriptions(session)
    return change


async def check_room_to_enable(session: AsyncSession, model: Any, user_id: int) -> None:
    """403 when turning one more endpoint or channel on would exceed the owner's plan (owner locked first)."""
    await lock_owner(session, user_id)
    tier = (await session.execute(select(User.tier).where(User.id == user_id))).scalar_one_or_none()
    plan = get_tier(tier)
    limit = _limit(plan, model)
    stmt = select(func.count()).where(model.user_id == user_id, model.enabled.is_(True))
    enabled = int((await session.execute(stmt)).scalar_one())
    if enabled >= limit:
        raise LimitReached(
            f"your {plan.name} plan allows {limit} enabled {WHAT[model]}; you have {enabled}",
            details={"limit": limit, "current": enabled, "tier": plan.name},
        )


async def set_tier(session: AsyncSession, user: User, tier: str) -> PlanChange:
    """Change a plan by hand (`kamiyo users set-tier`): endpoints and channels beyond the new limits are
    turned off, and back on after an upgrade, as when Stripe changes it."""
    user.tier = check_tier(tier)
    user.updated_at = utcnow()
    return await apply_plan(session, user.id, user.tier)
