"""A plan change keeps the plan's limits: a downgrade turns the newest endpoints and channels off (saying why),
an upgrade turns them back on, and switching one on by hand is refused while the plan has no room."""

from __future__ import annotations

import time

from sqlalchemy import select

from kamiyo.accounts.models import User
from kamiyo.db import Database
from kamiyo.delivery import plan_limits
from kamiyo.delivery.models import AlertChannel, UserWebhook
from kamiyo.delivery.plan_limits import apply_plan
from tests.billing.helpers import PRICES, deliver
from tests.billing.stripe_fake import FakeStripe, event, fake_stripe, subscription
from tests.billing.test_stripe_events import buyer
from tests.delivery.support import add_channel, add_webhook, auth, delivery_settings
from tests.support.app import running
from tests.support.users import bearer, user_with_key

HOOK = "http://127.0.0.1:9/hook"


async def _state(db: Database, model: type[UserWebhook] | type[AlertChannel], user_id: int) -> list[tuple[bool, str]]:
    async with db.session() as session:
        rows = await session.execute(
            select(model.enabled, model.disabled_reason).where(model.user_id == user_id).order_by(model.id)
        )
        return [(bool(on), reason or "") for on, reason in rows]


async def _set_tier(db: Database, user_id: int, tier: str) -> None:
    async with db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        await plan_limits.set_tier(session, user, tier)


async def test_downgrade_turns_off_the_newest_and_upgrade_brings_them_back(database: Database) -> None:
    user_id, _ = await user_with_key(database, tier="team")
    for i in range(5):
        await add_webhook(database, user_id, f"{HOOK}/{i}")
    for i in range(3):
        await add_channel(database, user_id, "discord", f"https://discord.com/api/webhooks/{i}/x")

    await _set_tier(database, user_id, "free")  # 0 endpoints, 1 channel
    hooks = await _state(database, UserWebhook, user_id)
    assert [on for on, _ in hooks] == [False] * 5
    assert hooks[0][1] == "plan limit: the free plan allows 0 webhook endpoints"
    assert [on for on, _ in await _state(database, AlertChannel, user_id)] == [True, False, False]

    await _set_tier(database, user_id, "pro")  # 0 endpoints, 5 channels
    assert [on for on, _ in await _state(database, AlertChannel, user_id)] == [True, True, True]
    assert [on for on, _ in await _state(database, UserWebhook, user_id)] == [False] * 5

    await _set_tier(database, user_id, "team")
    assert await _state(database, UserWebhook, user_id) == [(True, "")] * 5


async def test_an_upgrade_does_not_revive_what_was_off_for_other_reasons(database: Database) -> None:
    user_id, _ = await user_with_key(database, tier="team")
    ids = [(await add_webhook(database, user_id, f"{HOOK}/{i}"))[0] for i in range(3)]
    async with database.session() as session:
        failing = await session.get(UserWebhook, ids[0])
        assert failing is not None
        failing.enabled, failing.disabled_reason = False, "20 failed deliveries in a row"
        paused = await session.get(UserWebhook, ids[1])
        assert paused is not None
        paused.enabled = False  # switched off by its owner
    async with database.session() as session:
        change = await apply_plan(session, user_id, "free")
    assert change.disabled == 1  # only the one still on
    async with database.session() as session:
        change = await apply_plan(session, user_id, "enterprise")
    assert change.enabled == 1
    assert await _state(database, UserWebhook, user_id) == [
        (False, "20 failed deliveries in a row"),
        (False, ""),
        (True, ""),
    ]


async def test_switching_one_on_needs_room_in_the_plan(db_url: str) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        user_id, key = await user_with_key(app.state.db, tier="team")
        ids = [(await add_webhook(app.state.db, user_id, f"{HOOK}/{i}"))[0] for i in range(5)]
        await _set_tier(app.state.db, user_id, "free")
        r = await c.patch(f"/api/v1/user-webhooks/{ids[0]}", headers=auth(key), json={"enabled": True})
        assert r.status_code == 403 and r.json()["error"]["code"] == "limit_reached"
        assert "free plan allows 0 enabled webhook endpoints" in r.json()["error"]["message"]
        shown = (await c.get(f"/api/v1/user-webhooks/{ids[4]}", headers=auth(key))).json()
        assert shown["enabled"] is False and shown["disabled_reason"].startswith("plan limit:")

        await _set_tier(app.state.db, user_id, "team")
        await c.patch(f"/api/v1/user-webhooks/{ids[4]}", headers=auth(key), json={"enabled": False})
        again = await c.patch(f"/api/v1/user-webhooks/{ids[4]}", headers=auth(key), json={"enabled": True})
        assert again.status_code == 200 and again.json()["enabled"] is True


async def test_a_cancelled_stripe_subscription_turns_the_endpoints_off(db_url: str, database: Database) -> None:
    with fake_stripe() as stripe_api:
        await _cancel_after_team(db_url, database, stripe_api)


async def _cancel_after_team(db_url: str, database: Database, stripe_api: FakeStripe) -> None:
    async with buyer(db_url, stripe_api) as b:
        t = int(time.time())
        team = subscription("sub_t", b.customer, PRICES["team"])
        assert (await deliver(b.c, event("customer.subscription.updated", team, t))).status_code == 200
        assert await b.tier() == "team"
        for i in range(2):
            await add_webhook(database, b.user_id, f"{HOOK}/{i}")
        ended = subscription("sub_t", b.customer, PRICES["team"], "canceled")
        assert (await deliver(b.c, event("customer.subscription.deleted", ended, t + 5))).status_code == 200
        assert await b.tier() == "free"
        listed = (await b.c.get("/api/v1/user-webhooks", headers=bearer(b.key))).json()
        assert [h["enabled"] for h in listed["data"]] == [False, False]
