"""Settings and calls shared by the billing tests."""

from __future__ import annotations

from typing import Any

import httpx

from kamiyo.config import Settings
from tests.billing.stripe_fake import sign
from tests.support.users import settings_for

STRIPE_SECRET = "sk_test_kamiyo_0123456789abcdefSECRET"
WEBHOOK_SECRET = "whsec_kamiyo_test_0123456789abcdefWH"
PRICES = {"pro": "price_pro_test_49", "team": "price_team_test_149", "enterprise": "price_ent_test_799"}


def billing_settings(db_url: str, api_base: str, **env: Any) -> Settings:
    values: dict[str, Any] = {
        "STRIPE_SECRET_KEY": STRIPE_SECRET,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_PRICE_PRO": PRICES["pro"],
        "STRIPE_PRICE_TEAM": PRICES["team"],
        "STRIPE_PRICE_ENTERPRISE": PRICES["enterprise"],
        "STRIPE_API_BASE": api_base,
        "KAMIYO_PUBLIC_URL": "https://kamiyo.example",
    }
    return settings_for(db_url, **{**values, **env})


async def deliver(
    c: httpx.AsyncClient, payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> httpx.Response:
    """POST a Stripe event to the webhook endpoint, signed as Stripe signs it."""
    headers = {"Stripe-Signature": sign(payload, secret, timestamp), "Content-Type": "application/json"}
    return await c.post("/api/v1/payments/stripe-webhook", content=payload, headers=headers)
