"""Checkout, portal and subscription state against a local Stripe stand-in answering Stripe-shaped JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.billing.helpers import PRICES, STRIPE_SECRET, billing_settings
from tests.billing.stripe_fake import FakeStripe, fake_stripe
from tests.support.app import running
from tests.support.users import bearer, settings_for, user_with_key


@pytest.fixture
def stripe_api() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


async def test_checkout_creates_customer_once_and_a_subscription_session(db_url: str, stripe_api: FakeStripe) -> None:
    user_id, key = await user_with_key(db_url, "buyer@example.com")
    async with running(billing_settings(db_url, stripe_api.url)) as (_, c):
        r = await c.post("/api/v1/payments/checkout", json={"tier": "pro"}, headers=bearer(key))
        assert r.status_code == 200, r.text
        assert r.json()["url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
        customer_call, session_call = stripe_api.calls
        assert customer_call.path == "/v1/customers"
        assert customer_call.form["email"] == "buyer@example.com"
        assert customer_call.form["metadata[user_id]"] == str(user_id)
        assert customer_call.headers["authorization"] == f"Bearer {STRIPE_SECRET}"
        assert customer_call.headers["idempotency-key"] == f"kamiyo-customer-{user_id}"
        form = session_call.form
        assert session_call.path == "/v1/checkout/sessions"
        assert form["mode"] == "subscription" and form["customer"] == "cus_test1"
        assert form["client_reference_id"] == str(user_id)
        assert form["line_items[0][price]"] == PRICES["pro"] and form["line_items[0][quantity]"] == "1"
        assert form["metadata[user_id]"] == str(user_id) and form["metadata[tier]"] == "pro"
        assert form["subscription_data[metadata][user_id]"] == str(user_id)
        assert form["success_url"].startswith("https://kamiyo.example/app/billing")

        again = await c.post("/api/v1/payments/checkout", json={"tier": "team"}, headers=bearer(key))
        assert again.status_code == 200
        assert [call.path for call in stripe_api.calls].count("/v1/customers") == 1  # reused
        assert stripe_api.calls[-1].form["customer"] == "cus_test1"
        assert stripe_api.calls[-1].form["line_items[0][price]"] == PRICES["team"]


async def test_portal_needs_a_customer_and_returns_its_url(db_url: str, stripe_api: FakeStripe) -> None:
    _, key = await user_with_key(db_url, "portal@example.com")
    _, other = await user_with_key(db_url, "portal2@example.com")
    async with running(billing_settings(db_url, stripe_api.url)) as (_, c):
        first = await c.post("/api/v1/billing/portal", headers=bearer(key))
        assert first.status_code == 409 and first.json()["error"]["code"] == "no_billing_account"
        await c.post("/api/v1/payments/checkout", json={"tier": "pro"}, headers=bearer(key))
        r = await c.post("/api/v1/billing/portal", headers=bearer(key))
        assert r.status_code == 200 and r.json()["url"].startswith("https://billing.stripe.com/p/session/")
        call = stripe_api.calls[-1]
        assert call.path == "/v1/billing_portal/sessions" and call.form["customer"] == "cus_test1"
        assert call.form["return_url"] == "https://kamiyo.example/app/billing"
        # another user's key opens nothing of this user's
        assert (await c.post("/api/v1/billing/portal", headers=bearer(other))).status_code == 409
        mine = await c.get("/api/v1/subscriptions/me", headers=bearer(other))
        assert mine.json() == {
            "tier": "free",
            "status": "none",
            "current_period_end": None,
            "cancel_at_period_end": False,
            "payment_failed": False,
        }


async def test_checkout_validates_the_tier(db_url: str, stripe_api: FakeStripe) -> None:
    _, key = await user_with_key(db_url, "tiers@example.com")
    async with running(billing_settings(db_url, stripe_api.url, STRIPE_PRICE_TEAM="")) as (_, c):
        for tier in ("free", "gold"):
            r = await c.post("/api/v1/payments/checkout", json={"tier": tier}, headers=bearer(key))
            assert r.status_code == 422, tier
        r = await c.post("/api/v1/payments/checkout", json={"tier": "team"}, headers=bearer(key))
        assert r.status_code == 503 and r.json()["error"]["code"] == "billing_not_configured"
        assert stripe_api.calls == []


async def test_without_stripe_settings_billing_answers_503(db_url: str) -> None:
    _, key = await user_with_key(db_url, "nobill@example.com")
    async with running(settings_for(db_url)) as (_, c):
        for method, path, body in (
            ("POST", "/api/v1/payments/checkout", {"tier": "pro"}),
            ("POST", "/api/v1/billing/portal", None),
            ("GET", "/api/v1/subscriptions/me", None),
        ):
            r = await c.request(method, path, json=body, headers=bearer(key))
            assert r.status_code == 503 and r.json()["error"]["code"] == "billing_not_configured", path
        r = await c.post("/api/v1/payments/stripe-webhook", content=b"{}", headers={"Stripe-Signature": "t=1,v1=x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "billing_not_configured"


async def test_stripe_failure_is_503_without_details(db_url: str, stripe_api: FakeStripe) -> None:
    _, key = await user_with_key(db_url, "fail@example.com")
    stripe_api.fail_with = 500
    async with running(billing_settings(db_url, stripe_api.url)) as (_, c):
        r = await c.post("/api/v1/payments/checkout", json={"tier": "pro"}, headers=bearer(key))
        assert r.status_code == 503 and r.json()["error"]["code"] == "billing_unavailable"
        assert STRIPE_SECRET not in r.text and "boom" not in r.text
