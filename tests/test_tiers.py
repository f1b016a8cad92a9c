"""The tier table is the contract's, and everything that shows tiers reads it."""

from __future__ import annotations

from kamiyo.config import Settings
from kamiyo.tiers import TIERS, best, get_tier, stripe_price, tier_for_price, tiers_markdown
from tests.support.app import running
from tests.support.users import settings_for


def test_tier_table_matches_the_contract() -> None:
    rows = {
        name: (t.price_usd, t.requests_per_day, t.webhooks, t.channels, t.live_stream, t.export)
        for name, t in TIERS.items()
    }
    assert rows == {
        "free": (0, 100, 0, 1, False, False),
        "pro": (49, 10_000, 0, 5, True, True),
        "team": (149, 100_000, 5, 20, True, True),
        "enterprise": (799, 1_000_000, 50, 100, True, True),
    }
    assert [t.rank for t in TIERS.values()] == [0, 1, 2, 3]


def test_unknown_tier_names_mean_free_and_best_picks_the_highest() -> None:
    assert get_tier("platinum").name == "free" and get_tier(None).name == "free"
    assert best(["pro", "free", "team"]).name == "team" and best([]).name == "free"


def test_stripe_prices_map_both_ways() -> None:
    settings = Settings(_env_file=None, STRIPE_PRICE_PRO="price_a", STRIPE_PRICE_TEAM="price_b")
    assert stripe_price(settings, TIERS["pro"]) == "price_a"
    assert stripe_price(settings, TIERS["enterprise"]) is None and stripe_price(settings, TIERS["free"]) is None
    assert tier_for_price(settings, "price_b") == TIERS["team"]
    assert tier_for_price(settings, "price_zzz") is None and tier_for_price(settings, None) is None


async def test_openapi_description_shows_the_tier_table(db_url: str) -> None:
    assert "| team | $149 | 100,000 | 5 | 20 | yes |" in tiers_markdown()
    async with running(settings_for(db_url)) as (_, c):
        spec = (await c.get("/openapi.json")).json()
        assert "| enterprise | $799 | 1,000,000 | 50 | 100 | yes |" in spec["info"]["description"]
        assert {"/api/v1/me", "/api/v1/keys", "/api/v1/payments/checkout"} <= set(spec["paths"])
