"""API shapes of webhook endpoints (CONTRACT §5); their delivery log's are `kamiyo.delivery.schemas`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from kamiyo.delivery.endpoints import EndpointIds
from kamiyo.delivery.filters import SubscriptionFilters

WEBHOOK_IDS = EndpointIds("webhook_id", "Endpoint id.", "Delivery id.")

URL_DOC = (
    "https:// URL of your receiver. Addresses that are or resolve to private, loopback or metadata ranges are refused."
)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description=URL_DOC)
    description: str = Field(default="", max_length=500)
    filters: SubscriptionFilters | None = Field(default=None, description="Which exploits to send; omit for all.")
    enabled: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000, description=URL_DOC)
    description: str | None = Field(default=None, max_length=500)
    filters: SubscriptionFilters | None = None
    enabled: bool | None = Field(
        default=None, description="Re-enabling clears `disabled_reason` and the failure count."
    )


class WebhookOut(BaseModel):
    id: int
    url: str
    description: str
    filters: SubscriptionFilters
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why Kamiyo disabled the endpoint (410 Gone, 20 failures in a row, `plan limit: …`)."
    )
    consecutive_failures: int
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the previous secret still signs beside the new one, after a rotation."
    )
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="`whsec_…` signing secret. Shown only here and on rotation: store it now.")


class WebhookList(BaseModel):
    data: list[WebhookOut]
    limit: int = Field(description="How many endpoints your tier allows.")


class SecretOut(BaseModel):
    id: int
    secret: str = Field(description="The new `whsec_…` secret. The old one keeps signing beside it for 24 h.")
    previous_secret_expires_at: datetime
