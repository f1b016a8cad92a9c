"""Billing API under /api/v1: checkout, portal, subscription state, and Stripe's webhook."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from kamiyo.accounts.deps import CurrentUser
from kamiyo.api_deps import SessionDep, SettingsDep
from kamiyo.billing import service, stripe_events
from kamiyo.billing.schemas import CheckoutIn, SubscriptionOut, UrlOut, WebhookAck
from kamiyo.errors import KamiyoError

router = APIRouter(tags=["billing"])
MAX_WEBHOOK_BYTES = 1 << 20
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or revoked API key"},
    503: {"description": "`billing_not_configured` without Stripe settings, or Stripe unreachable"},
}


@router.post(
    "/payments/checkout", response_model=UrlOut, summary="Start a Stripe Checkout for a tier", responses=ERRORS
)
async def checkout(body: CheckoutIn, user: CurrentUser, session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    return {"url": await service.start_checkout(session, settings, user, body.tier)}


@router.post("/billing/portal", response_model=UrlOut, summary="Open the Stripe customer portal", responses=ERRORS)
async def portal(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    return {"url": await service.open_portal(session, settings, user)}


@router.get("/subscriptions/me", response_model=SubscriptionOut, summary="Your subscription", responses=ERRORS)
async def my_subscription(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    return await service.subscription_status(session, settings, user)


@router.post(
    "/payments/stripe-webhook",
    response_model=WebhookAck,
    summary="Stripe event receiver (signed with Stripe-Signature)",
    responses={400: {"description": "Bad or stale signature"}, 503: {"description": "No STRIPE_WEBHOOK_SECRET"}},
)
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> dict[str, Any]:
    payload = await request.body()
    if len(payload) > MAX_WEBHOOK_BYTES:
        raise KamiyoError("Stripe event too large", status=413, code="payload_too_large")
    event = stripe_events.verify(settings, payload, stripe_signature)
    return await stripe_events.handle_event(session, settings, event)
