"""The tier table: the one place that says what each plan costs and allows.

The pricing page, the quotas, webhook and channel limits, feature gates, Stripe price lookup and the
OpenAPI text all read from `TIERS`; change a number here and every one of them follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from kamiyo.config import Settings

TierName = Literal["free", "pro", "team", "enterprise"]
Feature = Literal["live_stream", "export"]


@dataclass(frozen=True, slots=True)
class Tier:
    name: TierName
    title: str
    price_usd: int  # per month
    requests_per_day: int
    webhooks: int
    channels: int  # Discord, Telegram, Slack and e-mail channels together
    live_stream: bool
    export: bool
    rank: int  # order of the plans, for "pro and up" checks and picking the best of several subscriptions
    stripe_price_setting: str | None  # name of the setting holding this tier's Stripe price id
    submissions_per_day: int  # community submissions per user per UTC day

    def allows(self, feature: Feature) -> bool:
        return bool(getattr(self, feature))

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "price_usd": self.price_usd,
            "requests_per_day": self.requests_per_day,
            "webhooks": self.webhooks,
            "channels": self.channels,
            "live_stream": self.live_stream,
            "export": self.export,
        }


TIERS: dict[str, Tier] = {
    t.name: t
    for t in (
        Tier("free", "Free", 0, 100, 0, 1, False, False, 0, None, 5),
        Tier("pro", "Pro", 49, 10_000, 0, 5, True, True, 1, "STRIPE_PRICE_PRO", 20),
        Tier("team", "Team", 149, 100_000, 5, 20, True, True, 2, "STRIPE_PRICE_TEAM", 50),
        Tier("enterprise", "Enterprise", 799, 1_000_000, 50, 100, True, True, 3, "STRIPE_PRICE_ENTERPRISE", 200),
    )
}
FREE = TIERS["free"]
# Rows of the dashboard's CSV download without an account (with export, the whole filtered set).
ANONYMOUS_CSV_ROWS = 10_000
PAID_TIERS = tuple(name for name, tier in TIERS.items() if tier.stripe_price_setting)


def get_tier(name: str | None) -> Tier:
    """The tier called `name`; an unknown or empty name is the free tier (never more than was paid for)."""
    return TIERS.get(name or "", FREE)


def best(names: list[str]) -> Tier:
    """The highest of several tiers (free when the list is empty)."""
    return max((get_tier(n) for n in names), key=lambda t: t.rank, default=FREE)


def stripe_price(settings: Settings, tier: Tier) -> str | None:
    """The configured Stripe price id for a paid tier, or None."""
    if tier.stripe_price_setting is None:
        return None
    value = getattr(settings, tier.stripe_price_setting.lower(), None)
    return value or None


def tier_for_price(settings: Settings, price_id: str | None) -> Tier | None:
    """Which tier a Stripe price id buys, per the settings; None for an unknown price."""
    if not price_id:
        return None
    for tier in TIERS.values():
        if stripe_price(settings, tier) == price_id:
            return tier
    return None


def tiers_markdown() -> str:
    """The tier table as Markdown, for the OpenAPI description."""
    lines = [
        "| tier | price / month | API requests / day | webhooks | chat and e-mail channels | live stream, export |",
        "|---|---|---|---|---|---|",
    ]
    for t in TIERS.values():
        stream = "yes" if t.live_stream and t.export else "no"
        lines.append(f"| {t.name} | ${t.price_usd} | {t.requests_per_day:,} | {t.webhooks} | {t.channels} | {stream} |")
    return "\n".join(lines)
