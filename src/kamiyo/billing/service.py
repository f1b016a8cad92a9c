"""Checkout, customer portal, subscription state, and the rule that turns subscriptions into a tier.

Tier rule (re-derived from the stored subscriptions after every change, never accumulated):
- `active` / `trialing` → the tier its price buys;
- `past_due` → keeps that tier while Stripe retries the payment (flagged as a failed payment);
- `unpaid`, `canceled`, `incomplete`, `incomplete_expired`, `paused` → free;
- `cancel_at_period_end` keeps the tier until `current_period_end`, then free;
- several subscriptions → the highest tier any of them grants; a user with none keeps the tier an
  operator set with `kamiyo users set-tier`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.models import User
from kamiyo.billing.models import Subscription
from kamiyo.billing.stripe_api import BillingNotConfigured, require_billing, stripe_client
from kamiyo.config import Settings
from kamiyo.delivery.plan_limits import apply_plan
from kamiyo.errors import Conflict, InvalidInput
from kamiyo.kit.timeutil import utcnow
from kamiyo.tiers import PAID_TIERS, best, get_tier, stripe_price

GRANTING_STATUSES = frozenset({"active", "trialing", "past_due"})


def granted_tier(sub: Subscription, now: datetime | None = None) -> str:
    """The tier one subscription grants right now."""
    if sub.status not in GRANTING_STATUSES:
        return "free"
    now = now or utcnow()
    if sub.cancel_at_period_end and sub.current_period_end is not None and sub.current_period_end <= now:
        return "free"
    return sub.tier


async def user_subscriptions(session: AsyncSession, user_id: int) -> list[Subscription]:
    result = await session.execute(
        select(Subscription)
        .where(Subscription.user_id == user_id)
        .order_by(Subscription.updated_at.desc(), Subscription.id.desc())
    )
    return list(result.scalars())


async def rederive_tier(session: AsyncSession, user: User) -> str:
    """Set the user's tier from their subscriptions (unchanged when they have none) and return it."""
    subs = await user_subscriptions(session, user.id)
    if subs:
        tier = best([granted_tier(s) for s in subs]).name
        if tier != user.tier:
            user.tier = tier
            user.updated_at = utcnow()
            await apply_plan(session, user.id, tier)
    return user.tier


async def _ensure_customer(client: Any, user: User) -> str:
    if user.stripe_customer_id:
        return user.stripe_customer_id
    customer = await client.v1.customers.create_async(
        params={"email": user.email, "metadata": {"user_id": str(user.id)}},
        options={"idempotency_key": f"kamiyo-customer-{user.id}"},
    )
    user.stripe_customer_id = str(customer.id)
    return user.stripe_customer_id


async def start_checkout(session: AsyncSession, settings: Settings, user: User, tier_name: str) -> str:
    """The URL of a new Stripe Checkout session (subscription mode) for a paid tier."""
    require_billing(settings)
    if tier_name not in PAID_TIERS:
        raise InvalidInput(f"tier: one of {', '.join(PAID_TIERS)}", details=[{"field": "tier"}])
    price = stripe_price(settings, get_tier(tier_name))
    if not price:
        raise BillingNotConfigured(f"no Stripe price is configured for the {tier_name} tier")
    if any(granted_tier(s) != "free" for s in await user_subscriptions(session, user.id)):
        raise Conflict("you already have a subscription: change plans in the billing portal", code="already_subscribed")
    metadata = {"user_id": str(user.id), "tier": tier_name}
    base = settings.public_url.rstrip("/")
    async with stripe_client(settings) as client:
        customer = await _ensure_customer(client, user)
        checkout = await client.v1.checkout.sessions.create_async(
            params={
                "mode": "subscription",
                "customer": customer,
                "client_reference_id": str(user.id),
                "line_items": [{"price": price, "quantity": 1}],
                "metadata": metadata,
                "subscription_data": {"metadata": metadata},
                "success_url": f"{base}/app/billing?checkout=success",
                "cancel_url": f"{base}/app/billing?checkout=cancelled",
            }
        )
    return str(checkout.url)


async def open_portal(session: AsyncSession, settings: Settings, user: User) -> str:
    """The URL of a Stripe customer-portal session (change plan, payment method, cancel)."""
    require_billing(settings)
    if not user.stripe_customer_id:
        raise Conflict("no billing account yet: subscribe first", code="no_billing_account")
    async with stripe_client(settings) as client:
        portal = await client.v1.billing_portal.sessions.create_async(
            params={"customer": user.stripe_customer_id, "return_url": f"{settings.public_url.rstrip('/')}/app/billing"}
        )
    return str(portal.url)


async def subscription_status(session: AsyncSession, settings: Settings, user: User) -> dict[str, Any]:
    """The user's tier and the subscription behind it (or the newest one)."""
    require_billing(settings)
    subs = await user_subscriptions(session, user.id)
    current = next((s for s in subs if granted_tier(s) == user.tier and user.tier != "free"), None)
    sub = current or (subs[0] if subs else None)
    if sub is None:
        return {
            "tier": user.tier,
            "status": "none",
            "current_period_end": None,
            "cancel_at_period_end": False,
            "payment_failed": False,
        }
    return {
        "tier": user.tier,
        "status": sub.status,
        "current_period_end": sub.current_period_end,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "payment_failed": sub.payment_failed_at is not None or sub.status == "past_due",
    }
