"""Outbound calls to Stripe through the official library's StripeClient and its async httpx client.

`STRIPE_API_BASE` replaces `https://api.stripe.com` (tests point it at a local server). A client is made
per call and closed after: billing calls are rare and this keeps no connection bound to an event loop.
Stripe's errors become 503 `billing_unavailable` with no Stripe text in the answer; the log gets the
error class and status only, never a key.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import stripe

from kamiyo.config import Settings
from kamiyo.errors import KamiyoError

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 20.0


class BillingNotConfigured(KamiyoError):
    status = 503
    code = "billing_not_configured"


class BillingUnavailable(KamiyoError):
    status = 503
    code = "billing_unavailable"


def require_billing(settings: Settings) -> str:
    """The Stripe secret key, or 503 `billing_not_configured` (tiers are then set with `kamiyo users set-tier`)."""
    if not settings.stripe_secret_key:
        raise BillingNotConfigured("billing is not configured on this server (no STRIPE_SECRET_KEY)")
    return settings.stripe_secret_key


@asynccontextmanager
async def stripe_client(settings: Settings) -> AsyncIterator[stripe.StripeClient]:
    """A StripeClient for one unit of work; Stripe failures surface as `BillingUnavailable`."""
    api_key = require_billing(settings)
    http = stripe.HTTPXClient(timeout=TIMEOUT_SECONDS)
    base = settings.stripe_api_base.rstrip("/") if settings.stripe_api_base else None
    client = stripe.StripeClient(
        api_key, base_addresses={"api": base} if base else None, http_client=http, max_network_retries=2
    )
    try:
        yield client
    except stripe.StripeError as exc:
        log.warning("Stripe call failed: %s (http status %s)", type(exc).__name__, exc.http_status)
        raise BillingUnavailable("the payment provider could not be reached; try again shortly") from exc
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]
