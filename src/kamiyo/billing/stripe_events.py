"""Incoming Stripe webhooks: verify, record the event id once, apply, re-derive the tier.

Stripe may deliver an event twice and in any order. Each event id is stored in `stripe_events`, so a
replay does nothing. Each subscription row remembers the `created` time of the newest event applied to
it; an older snapshot is ignored, and on a tie a status earlier in the lifecycle (e.g. `incomplete`
after `active`) is ignored too. A canceled subscription never comes back to life. The tier itself is
always re-derived from the stored subscriptions (see billing.service), so the end state does not
depend on the order of arrival.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import stripe
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.models import User
from kamiyo.billing.models import StripeEvent, Subscription
from kamiyo.billing.service import rederive_tier
from kamiyo.billing.stripe_api import BillingNotConfigured
from kamiyo.config import Settings
from kamiyo.errors import Conflict, KamiyoError
from kamiyo.kit.timeutil import utcnow
from kamiyo.tiers import PAID_TIERS, tier_for_price

log = logging.getLogger(__name__)
TOLERANCE_SECONDS = 300
STATUS_ORDER = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "unpaid": 4,
    "paused": 4,
    "canceled": 5,
    "incomplete_expired": 5,
}
TERMINAL = frozenset({"canceled", "incomplete_expired"})


class InvalidWebhook(KamiyoError):
    status = 400
    code = "invalid_webhook"


def _id(value: Any) -> str | None:
    """An expandable Stripe field: an id string, or an expanded object with an id."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def verify(settings: Settings, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event, if `Stripe-Signature` is valid for this payload and at most 5 minutes old; else 400."""
    secret = settings.stripe_webhook_secret
    if not secret:
        raise BillingNotConfigured("billing is not configured on this server (no STRIPE_WEBHOOK_SECRET)")
    try:
        stripe.Webhook.construct_event(payload, signature or "", secret, tolerance=TOLERANCE_SECONDS)
        event = orjson.loads(payload)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook("Stripe-Signature missing, wrong or too old") from exc
    except ValueError as exc:
        raise InvalidWebhook("payload is not a Stripe event") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("data"), dict):
        raise InvalidWebhook("payload is not a Stripe event")
    return event


async def handle_event(session: AsyncSession, settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    """Apply a verified event once. A replayed id answers `duplicate` and changes nothing."""
    event_id: str = event["id"]
    if await session.get(StripeEvent, event_id) is not None:
        return {"received": True, "duplicate": True}
    created = int(event.get("created") or 0)
    record = StripeEvent(
        id=event_id, type=str(event.get("type"))[:100], created=created, processed_at=utcnow(), outcome=""
    )
    session.add(record)
    try:
        await session.flush()
    except IntegrityError as exc:  # the same event is being processed concurrently; Stripe will retry
        raise Conflict("event is being processed") from exc
    obj = event["data"].get("object") or {}
    outcome = await _dispatch(session, settings, record.type, obj, created)
    record.outcome = outcome[:200]
    log.info("stripe event %s %s: %s", record.type, event_id, outcome)
    return {"received": True, "duplicate": False, "outcome": outcome}


async def _dispatch(session: AsyncSession, settings: Settings, kind: str, obj: dict[str, Any], created: int) -> str:
    if kind == "checkout.session.completed":
        return await _checkout_completed(session, obj, created)
    if kind.startswith("customer.subscription."):
        return await _subscription_changed(session, settings, obj, created)
    if kind in {"invoice.payment_failed", "invoice.paid", "invoice.payment_succeeded"}:
        return await _invoice(session, obj, created, failed=kind == "invoice.payment_failed")
    return "ignored"


async def _subscription_row(session: AsyncSession, sub_id: str) -> Subscription | None:
    result = await session.execute(select(Subscription).where(Subscription.stripe_subscription_id == sub_id))
    return result.scalar_one_or_none()


async def _find_user(session: AsyncSession, user_ref: Any, customer: str | None) -> User | None:
    """The user by our id (client_reference_id / metadata), else by Stripe customer id."""
    if isinstance(user_ref, str) and user_ref.isdigit():
        user = await session.get(User, int(user_ref))
        if user is not None:
            return user
    if customer:
        result = await session.execute(select(User).where(User.stripe_customer_id == customer))
        return result.scalar_one_or_none()
    return None


async def _link_customer(session: AsyncSession, user: User, customer: str | None) -> None:
    """Remember the user's Stripe customer id, unless another account already has it."""
    if not customer or user.stripe_customer_id:
        return
    taken = await session.execute(select(User.id).where(User.stripe_customer_id == customer))
    if taken.first() is None:
        user.stripe_customer_id = customer


def _new_row(user: User, sub_id: str, customer: str | None, status: str, tier: str) -> Subscription:
    now = utcnow()
    return Subscription(
        user_id=user.id,
        stripe_subscription_id=sub_id,
        stripe_customer_id=customer,
        status=status,
        tier=tier,
        cancel_at_period_end=False,
        created_at=now,
        updated_at=now,
    )


async def _checkout_completed(session: AsyncSession, obj: dict[str, Any], created: int) -> str:
    if obj.get("mode") != "subscription":
        return "ignored: not a subscription checkout"
    metadata = obj.get("metadata") or {}
    customer = _id(obj.get("customer"))
    user = await _find_user(session, obj.get("client_reference_id") or metadata.get("user_id"), customer)
    sub_id = _id(obj.get("subscription"))
    if user is None or sub_id is None:
        return "ignored: unknown user or no subscription"
    await _link_customer(session, user, customer)
    paid = obj.get("payment_status") in {"paid", "no_payment_required"}
    tier = str(metadata["tier"]) if metadata.get("tier") in PAID_TIERS else "free"
    row = await _subscription_row(session, sub_id)
    if row is None:
        row = _new_row(user, sub_id, customer, "active" if paid else "incomplete", tier)
        row.event_created = created
        session.add(row)
    elif paid and row.status == "incomplete" and (row.event_created is None or created > row.event_created):
        row.status, row.event_created, row.updated_at = "active", created, utcnow()
    await session.flush()
    return f"checkout completed: tier {await rederive_tier(session, user)}"


def _is_stale(row: Subscription, created: int, status: str) -> bool:
    if row.status in TERMINAL and status not in TERMINAL:
        return True
    if row.event_created is None:
        return False
    if created != row.event_created:
        return created < row.event_created
    return STATUS_ORDER.get(status, 0) < STATUS_ORDER.get(row.status, 0)


def _period_end(obj: dict[str, Any]) -> datetime | None:
    """`current_period_end` of the subscription (older API versions) or of its first item (since 2025-03)."""
    value = obj.get("current_period_end")
    items = (obj.get("items") or {}).get("data") or []
    if value is None and items:
        value = items[0].get("current_period_end")
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _price_id(obj: dict[str, Any]) -> str | None:
    items = (obj.get("items") or {}).get("data") or []
    if items:
        return _id(items[0].get("price"))
    return _id(obj.get("plan"))


def _tier_of(settings: Settings, sub_id: str, user: User, price: str | None) -> str:
    """The tier the subscription's price buys. Only the price counts: metadata is not evidence of payment (a
    cheap price can carry `tier: enterprise`), so a price outside the STRIPE_PRICE_* settings buys nothing."""
    tier = tier_for_price(settings, price)
    if tier is not None:
        return tier.name
    log.warning(
        "stripe subscription %s of user %s has price %s, which is not one of the STRIPE_PRICE_* settings: "
        "it grants the free tier (add the price to the settings if it should buy a tier)",
        sub_id,
        user.id,
        price or "(none)",
    )
    return "free"


async def _subscription_changed(session: AsyncSession, settings: Settings, obj: dict[str, Any], created: int) -> str:
    sub_id, status = _id(obj.get("id")), str(obj.get("status") or "")
    if sub_id is None or status not in STATUS_ORDER:
        return "ignored: not a subscription"
    customer = _id(obj.get("customer"))
    row = await _subscription_row(session, sub_id)
    user = await (
        session.get(User, row.user_id)
        if row
        else _find_user(session, (obj.get("metadata") or {}).get("user_id"), customer)
    )
    if user is None:
        return "ignored: unknown customer"
    await _link_customer(session, user, customer)
    if row is None:
        row = _new_row(user, sub_id, customer, status, "free")
        session.add(row)
    elif _is_stale(row, created, status):
        return f"stale: kept {row.status}"
    price = _price_id(obj)
    row.status, row.price_id, row.tier = status, price, _tier_of(settings, sub_id, user, price)
    row.current_period_end = _period_end(obj)
    row.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
    row.stripe_customer_id = customer or row.stripe_customer_id
    row.event_created, row.updated_at = created, utcnow()
    await session.flush()
    unknown = "" if tier_for_price(settings, price) else f" (unknown price {price or '(none)'})"
    return f"subscription {status}{unknown}: tier {await rederive_tier(session, user)}"


def _invoice_subscription(obj: dict[str, Any]) -> str | None:
    details = ((obj.get("parent") or {}).get("subscription_details")) or {}
    return _id(details.get("subscription")) or _id(obj.get("subscription"))


async def _invoice(session: AsyncSession, obj: dict[str, Any], created: int, *, failed: bool) -> str:
    sub_id = _invoice_subscription(obj)
    row = await _subscription_row(session, sub_id) if sub_id else None
    if row is None:
        return "ignored: no known subscription"
    if row.payment_event_created is not None and created < row.payment_event_created:
        return "stale"
    row.payment_failed_at = utcnow() if failed else None
    row.payment_event_created, row.updated_at = created, utcnow()
    return "payment failed: flagged, tier kept during retries" if failed else "payment succeeded"
