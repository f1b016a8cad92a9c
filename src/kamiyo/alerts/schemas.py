"""API shapes of alert channels (CONTRACT §6)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from kamiyo.delivery.endpoints import EndpointIds
from kamiyo.delivery.filters import SubscriptionFilters

CHANNEL_IDS = EndpointIds("channel_id", "Channel id.", "Alert id.")


class ChannelFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=500)
    filters: SubscriptionFilters | None = Field(default=None, description="Which exploits to send; omit for all.")
    enabled: bool = True


class WebhookChannelCreate(ChannelFields):
    webhook_url: str = Field(min_length=1, max_length=2000, description="The Discord or Slack incoming-webhook URL.")


class TelegramChannelCreate(ChannelFields):
    chat_id: str = Field(
        min_length=1, max_length=64, description="Numeric chat id (e.g. `-1001234567890`) or `@channel`."
    )


class EmailChannelCreate(ChannelFields):
    address: str = Field(min_length=3, max_length=254, description="Where to send the alerts.")


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=500)
    filters: SubscriptionFilters | None = None
    enabled: bool | None = Field(
        default=None, description="Re-enabling clears `disabled_reason` and the failure count."
    )
    webhook_url: str | None = Field(default=None, min_length=1, max_length=2000, description="Discord and Slack only.")
    chat_id: str | None = Field(default=None, min_length=1, max_length=64, description="Telegram only.")
    address: str | None = Field(default=None, min_length=3, max_length=254, description="E-mail only.")


class ChannelOut(BaseModel):
    id: int
    kind: str = Field(description="discord | telegram | slack | email")
    target: str = Field(description="Where alerts go; webhook URLs are shown shortened (they are credentials).")
    description: str
    filters: SubscriptionFilters
    enabled: bool
    confirmed: bool = Field(
        description="E-mail and Telegram: the owner opened the link or entered the code sent there; "
        "until then nothing but the confirmation is sent. Discord and Slack: always true."
    )
    confirmation_sent_at: datetime | None = Field(
        description="When the pending confirmation was last sent (null once confirmed)."
    )
    disabled_reason: str | None = Field(
        description="Why Kamiyo disabled the channel (its destination refused, failures in a row, `plan limit: …`)."
    )
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=4,
        max_length=200,
        description="The code sent to the Telegram chat, or the last part of the e-mail's confirmation link.",
    )


class ChannelList(BaseModel):
    data: list[ChannelOut]
    limit: int = Field(description="How many channels (of all kinds together) your tier allows.")
    used: int = Field(description="How many channels of all kinds you have.")
