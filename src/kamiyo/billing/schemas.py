"""Request and answer shapes of the billing API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from kamiyo.tiers import PAID_TIERS


class CheckoutIn(BaseModel):
    tier: str = Field(description=f"One of {', '.join(PAID_TIERS)}.", examples=["pro"])


class UrlOut(BaseModel):
    url: str


class SubscriptionOut(BaseModel):
    tier: str
    status: str = Field(description="Stripe's subscription status, or `none`.")
    current_period_end: datetime | None
    cancel_at_period_end: bool
    payment_failed: bool = Field(description="The last payment failed; the tier is kept while Stripe retries.")


class WebhookAck(BaseModel):
    received: bool
    duplicate: bool
    outcome: str | None = None
