"""Request and answer shapes of the accounts API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from kamiyo.accounts.service import PASSWORD_MAX, PASSWORD_MIN


class SignupIn(BaseModel):
    email: str = Field(max_length=254, examples=["ada@example.com"])
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


class LoginIn(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class UserOut(BaseModel):
    id: int
    email: str
    tier: str
    created_at: datetime


class AuthOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send as `X-CSRF-Token` (or form field `csrf_token`) on cookie mutations.")


class LimitsOut(BaseModel):
    requests_per_day: int
    webhooks: int
    channels: int
    live_stream: bool
    export: bool
    price_usd: int


class UsageOut(BaseModel):
    requests_today: int
    remaining: int
    reset: int = Field(description="Unix seconds of the next reset (UTC midnight).")


class MeOut(BaseModel):
    user: UserOut
    tier: str
    usage: UsageOut
    limits: LimitsOut
    csrf_token: str | None = Field(None, description="Present for cookie (dashboard) sessions.")


class KeyCreateIn(BaseModel):
    name: str | None = Field(None, max_length=100)


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The first characters of the key, for recognising it; never the whole key.")
    created_at: datetime
    last_used_at: datetime | None


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The full key. Shown this once only: store it now.")
