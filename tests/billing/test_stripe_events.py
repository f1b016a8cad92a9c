"""Stripe webhooks signed exactly as Stripe signs them: verification, replays, order, cancellation, dunning."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from kamiyo.billing.models import StripeEvent
from kamiyo.db import Database
from tests.billing.helpers import PRICES, billing_settings, deliver
from tests.billing.stripe_fake import (
    FakeStripe,
    completed_checkout,
    event,
    fake_stripe,
    invoice,
    subscription,
)
from tests.support.app import running
from tests.support.users import bearer, user_with_key


@pytest.fixture
def stripe_api() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


@dataclass
class Buyer:
    """A user who has started a checkout (so Stripe knows them as `customer`)."""

    c: httpx.AsyncClient
    user_id: int
    key: str
    customer: str

    async def me(self) -> httpx.Response:
        return await self.c.get("/api/v1/me", headers=bearer(self.key))

    async def tier(self) -> str:
        return str((await self.me()).json()["tier"])

    async def subscription(self) -> dict[str, object]:
        r = await self.c.get("/api/v1/subscriptions/me", headers=bearer(self.key))
        assert r.status_code == 200, r.text
        return dict(r.json())


@asynccontextmanager
async def buyer(db_url: str, stripe_api: FakeStripe, email: str = "buyer@example.com") -> AsyncIterator[Buyer]:
    user_id, key = await user_with_key(db_url, email)
    async with running(billing_settings(db_url, stripe_api.url)) as (_, c):
        r = await c.post("/api/v1/payments/checkout", json={"tier": "pro"}, headers=bearer(key))
        assert r.status_code == 200, r.text
        customer = next(call for call in stripe_api.calls if call.path == "/v1/customers")
        yield Buyer(c, user_id, key, f"cus_test{stripe_api.calls.index(customer) + 1}")


async def test_signed_subscription_event_upgrades_and_limits_rise_at_once(
    db_url: str, stripe_api: FakeStripe, database: Database
) -> None:
    async with buyer(db_url, stripe_api) as b:
        assert (await b.me()).headers["x-ratelimit-limit"] == "100"
        now = int(time.time())
        r = await deliver(
            b.c, event("checkout.session.completed", completed_checkout(b.user_id, b.customer, "sub_1", "pro"), now)
        )
        assert r.status_code == 200 and r.json()["duplicate"] is False
        r = await deliver(
            b.c, event("customer.subscription.created", subscription("sub_1", b.customer, PRICES["pro"]), now)
        )
        assert r.status_code == 200
        me = await b.me()
        assert me.json()["tier"] == "pro" and me.headers["x-ratelimit-limit"] == "10000"
        assert int(me.headers["x-ratelimit-remaining"]) == 10000 - 3  # checkout + 2 x /me today: count carries over
        sub = await b.subscription()
        assert sub["tier"] == "pro" and sub["status"] == "active" and sub["cancel_at_period_end"] is False
        assert sub["current_period_end"] is not None
    async with database.session() as session:
        assert (await session.execute(select(func.count()).select_from(StripeEvent))).scalar_one() == 2


async def test_bad_or_stale_signature_is_400_and_changes_nothing(db_url: str, stripe_api: FakeStripe) -> None:
    async with buyer(db_url, stripe_api) as b:
        payload = event(
            "customer.subscription.updated", subscription("sub_x", b.customer, PRICES["team"]), int(time.time())
        )
        wrong = await deliver(b.c, payload, secret="whsec_not_the_secret")
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_webhook"
        stale = await deliver(b.c, payload, timestamp=int(time.time()) - 301)
        assert stale.status_code == 400
        tampered = payload.replace(b"price_team", b"price_ent_")
        headers = {"Stripe-Signature": (await _signature_of(payload))}
        assert (await b.c.post("/api/v1/payments/stripe-webhook", content=tampered, headers=headers)).status_code == 400
        unsigned = await b.c.post("/api/v1/payments/stripe-webhook", content=payload)
        assert unsigned.status_code == 400
        assert await b.tier() == "free"
        fresh = await deliver(b.c, payload, timestamp=int(time.time()) - 250)  # within the 300 s tolerance
        assert fresh.status_code == 200 and await b.tier() == "team"


async def _signature_of(payload: bytes) -> str:
    from tests.billing.helpers import WEBHOOK_SECRET
    from tests.billing.stripe_fake import sign

    return sign(payload, WEBHOOK_SECRET)


async def test_replayed_event_is_a_no_op_200(db_url: str, stripe_api: FakeStripe) -> None:
    async with buyer(db_url, stripe_api) as b:
        t = int(time.time())
        active = event(
            "customer.subscription.updated", subscription("sub_r", b.customer, PRICES["pro"]), t, "evt_replay_1"
        )
        assert (await deliver(b.c, active)).json()["duplicate"] is False
        ended = subscription("sub_r", b.customer, PRICES["pro"], "canceled")
        assert (await deliver(b.c, event("customer.subscription.deleted", ended, t + 5))).status_code == 200
        assert await b.tier() == "free"
        replay = await deliver(b.c, active)  # the same event id again, freshly signed
        assert replay.status_code == 200 and replay.json() == {"received": True, "duplicate": True, "outcome": None}
        assert await b.tier() == "free"


async def test_events_out_of_order_end_in_the_right_tier(db_url: str, stripe_api: FakeStripe) -> None:
    async with buyer(db_url, stripe_api) as b:
        t = int(time.time())
        # Stripe's order: created (incomplete, t) → updated (active, t+2) → checkout completed (t+3).
        # Delivered: updated, checkout completed, then the stale created.
        updated = subscription("sub_o", b.customer, PRICES["team"])
        assert (await deliver(b.c, event("customer.subscription.updated", updated, t + 2))).status_code == 200
        assert await b.tier() == "team"
        done = completed_checkout(b.user_id, b.customer, "sub_o", "team")
        assert (await deliver(b.c, event("checkout.session.completed", done, t + 3))).status_code == 200
        created = subscription("sub_o", b.customer, PRICES["team"], "incomplete")
        r = await deliver(b.c, event("customer.subscription.created", created, t))
        assert r.status_code == 200 and r.json()["outcome"].startswith("stale")
        assert await b.tier() == "team" and (await b.subscription())["status"] == "active"
        # same second, earlier lifecycle state: ignored too
        same_second = subscription("sub_o", b.customer, PRICES["team"], "incomplete")
        await deliver(b.c, event("customer.subscription.updated", same_second, t + 2))
        assert await b.tier() == "team"


async def test_checkout_completed_first_grants_the_tier_until_subscription_events_arrive(
    db_url: str, stripe_api: FakeStripe
) -> None:
    async with buyer(db_url, stripe_api) as b:
        t = int(time.time())
        done = completed_checkout(b.user_id, b.customer, "sub_c", "pro")
        await deliver(b.c, event("checkout.session.completed", done, t))
        assert await b.tier() == "pro"
        late_incomplete = subscription("sub_c", b.customer, PRICES["pro"], "incomplete")
        await deliver(b.c, event("customer.subscription.created", late_incomplete, t))
        assert await b.tier() == "pro"
        upgraded = subscription("sub_c", b.customer, PRICES["enterprise"])
        await deliver(b.c, event("customer.subscription.updated", upgraded, t + 60))
        assert await b.tier() == "enterprise"


async def test_cancel_at_period_end_keeps_the_tier_until_the_period_ends(db_url: str, stripe_api: FakeStripe) -> None:
    async with buyer(db_url, stripe_api) as b:
        t = int(time.time())
        await deliver(b.c, event("customer.subscription.created", subscription("sub_e", b.customer, PRICES["pro"]), t))
        ending = subscription("sub_e", b.customer, PRICES["pro"], cancel_at_period_end=True, period_end=t + 86400)
        await deliver(b.c, event("customer.subscription.updated", ending, t + 1))
        sub = await b.subscription()
        assert sub["tier"] == "pro" and sub["cancel_at_period_end"] is True and sub["status"] == "active"
        ended = subscription("sub_e", b.customer, PRICES["pro"], "canceled", cancel_at_period_end=True)
        await deliver(b.c, event("customer.subscription.deleted", ended, t + 2))
        me = await b.me()
        assert me.json()["tier"] == "free" and me.headers["x-ratelimit-limit"] == "100"
        assert (await b.subscription())["status"] == "canceled"
        # a canceled subscription never comes back, even from a later-stamped stale snapshot
        await deliver(b.c, event("customer.subscription.updated", ending, t + 3))
        assert await b.tier() == "free"


async def test_period_already_over_with_cancel_at_period_end_is_free(db_url: str, stripe_api: FakeStripe) -> None:
    async with buyer(db_url, stripe_api) as b:
        t = int(time.time())
        over = subscription("sub_p", b.customer, PRICES["pro"], cancel_at_period_end=True, period_end=t - 10)
        await deliver(b.c, event("customer.subscription.updated", over, t))
        assert await b.tier() == "free"


async def test_failed_payment_keeps_the_tier_while_stripe_retries_then_unpaid_is_free(
    db_url: str, stripe_api: FakeStripe
) -> None:
    async with buyer(db_url, stripe_api) as b:
        t = int(time.time())
        await deliver(b.c, event("customer.subscription.created", subscription("sub_d", b.customer, PRICES["team"]), t))
        r = await deliver(b.c, event("invoice.payment_failed", invoice("sub_d", b.customer), t + 1))
        assert r.status_code == 200
        sub = await b.subscription()
        assert sub["tier"] == "team" and sub["payment_failed"] is True
        past_due = subscription("sub_d", b.customer, PRICES["team"], "past_due")
        await deliver(b.c, event("customer.subscription.updated", past_due, t + 2))
        sub = await b.subscription()
        assert sub["tier"] == "team" and sub["status"] == "past_due" and sub["payment_failed"] is True
        await deliver(b.c, event("invoice.paid", invoice("sub_d", b.customer), t + 3))
        await deliver(
            b.c, event("customer.subscription.updated", subscription("sub_d", b.customer, PRICES["team"]), t + 4)
        )
        assert (await b.subscription())["payment_failed"] is False
        # the old failure arriving late does not flag it again
        await deliver(b.c, event("invoice.payment_failed", invoice("sub_d", b.customer), t + 1))
        assert (await b.subscription())["payment_failed"] is False
        unpaid = subscription("sub_d", b.customer, PRICES["team"], "unpaid")
        await deliver(b.c, event("customer.subscription.updated", unpaid, t + 5))
        assert await b.tier() == "free"


async def test_unknown_customer_and_other_event_types_are_acknowledged(db_url: str, stripe_api: FakeStripe) -> None:
    async with buyer(db_url, stripe_api) as b:
        t = int(time.time())
        stranger = subscription("sub_z", "cus_unknown", PRICES["pro"])
        r = await deliver(b.c, event("customer.subscription.updated", stranger, t))
        assert r.status_code == 200 and r.json()["outcome"].startswith("ignored")
        r = await deliver(b.c, event("charge.refunded", {"id": "ch_1", "object": "charge"}, t))
        assert r.status_code == 200 and r.json()["outcome"] == "ignored"
        assert await b.tier() == "free"
        garbage = await deliver(b.c, b"not json at all")
        assert garbage.status_code == 400


async def test_subscription_found_by_metadata_when_customer_is_new(db_url: str, stripe_api: FakeStripe) -> None:
    async with buyer(db_url, stripe_api) as b:
        sub = subscription("sub_m", "cus_other", PRICES["pro"], metadata={"user_id": str(b.user_id), "tier": "pro"})
        await deliver(b.c, event("customer.subscription.created", sub, int(time.time())))
        assert await b.tier() == "pro"


async def test_an_unknown_price_grants_free_whatever_its_metadata_says(
    db_url: str, stripe_api: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    async with buyer(db_url, stripe_api) as b:
        t = int(time.time())
        await deliver(
            b.c, event("checkout.session.completed", completed_checkout(b.user_id, b.customer, "sub_p", "pro"), t)
        )
        await deliver(b.c, event("customer.subscription.created", subscription("sub_p", b.customer, PRICES["pro"]), t))
        assert await b.tier() == "pro"
        cheap = subscription(
            "sub_p", b.customer, "price_cheap_1", metadata={"user_id": str(b.user_id), "tier": "enterprise"}
        )
        with caplog.at_level("WARNING", logger="kamiyo.billing.stripe_events"):
            r = await deliver(b.c, event("customer.subscription.updated", cheap, t + 60))
        assert r.status_code == 200 and "unknown price price_cheap_1" in r.json()["outcome"]
        assert await b.tier() == "free"
        assert (await b.subscription())["tier"] == "free"
        warning = next(rec.getMessage() for rec in caplog.records if "price_cheap_1" in rec.getMessage())
        assert "sub_p" in warning and "free" in warning
        fresh = subscription("sub_n", "cus_new", "price_cheap_2", metadata={"user_id": str(b.user_id), "tier": "team"})
        await deliver(b.c, event("customer.subscription.created", fresh, t + 61))
        assert await b.tier() == "free"
        back = subscription("sub_p", b.customer, PRICES["team"])
        await deliver(b.c, event("customer.subscription.updated", back, t + 120))
        assert await b.tier() == "team"  # a configured price still buys its tier
