"""Plan limits and the change budget hold under concurrent requests, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from kamiyo.db import Database
from kamiyo.delivery.models import AlertChannel, UserWebhook
from tests.support.app import running
from tests.support.users import bearer, settings_for, user_with_key

HOOK = "http://127.0.0.1:9/hook"
DISCORD = "/api/v1/discord/channels"


async def _count(db_url: str, model: Any, user_id: int) -> int:
    db = Database(db_url)
    try:
        async with db.session() as session:
            return int(await session.scalar(select(func.count()).where(model.user_id == user_id)) or 0)
    finally:
        await db.dispose()


async def test_ten_concurrent_webhook_creates_by_a_team_user_make_exactly_five(db_url: str) -> None:
    user_id, key = await user_with_key(db_url, "team@example.com", tier="team")
    async with running(settings_for(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS="1")) as (_, c):
        answers = await asyncio.gather(
            *(c.post("/api/v1/user-webhooks", headers=bearer(key), json={"url": f"{HOOK}/{n}"}) for n in range(10))
        )
    assert Counter(r.status_code for r in answers) == {201: 5, 403: 5}
    refused = next(r for r in answers if r.status_code == 403).json()["error"]
    assert refused["code"] == "limit_reached" and refused["details"]["limit"] == 5
    assert await _count(db_url, UserWebhook, user_id) == 5


async def test_thirty_concurrent_discord_creates_by_a_free_user_make_exactly_one(db_url: str) -> None:
    user_id, key = await user_with_key(db_url, "free@example.com")
    settings = settings_for(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS="1", KAMIYO_RATE_LIMITS="off")  # the plan alone
    async with running(settings) as (_, c):
        answers = await asyncio.gather(
            *(c.post(DISCORD, headers=bearer(key), json={"webhook_url": f"{HOOK}/{n}"}) for n in range(30))
        )
    assert Counter(r.status_code for r in answers) == {201: 1, 403: 29}
    assert await _count(db_url, AlertChannel, user_id) == 1


async def test_concurrent_creates_within_the_change_budget_still_keep_the_plan(db_url: str) -> None:
    user_id, key = await user_with_key(db_url, "budget@example.com")
    async with running(settings_for(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS="1")) as (_, c):
        answers = await asyncio.gather(
            *(c.post(DISCORD, headers=bearer(key), json={"webhook_url": f"{HOOK}/{n}"}) for n in range(30))
        )
    codes = Counter(r.status_code for r in answers)
    assert codes[201] == 1 and set(codes) <= {201, 403, 429}
    assert await _count(db_url, AlertChannel, user_id) == 1


async def test_channel_changes_share_the_ten_a_minute_budget_of_webhooks(db_url: str) -> None:
    _, key = await user_with_key(db_url, "changes@example.com", tier="team")
    async with running(settings_for(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS="1")) as (_, c):
        hook = await c.post("/api/v1/user-webhooks", headers=bearer(key), json={"url": HOOK})
        assert hook.status_code == 201  # 1
        made = await c.post(DISCORD, headers=bearer(key), json={"webhook_url": HOOK})
        assert made.status_code == 201  # 2
        channel = f"{DISCORD}/{made.json()['id']}"
        for n in range(7):  # 3..9
            r = await c.patch(channel, headers=bearer(key), json={"description": f"change {n}"})
            assert r.status_code == 200
        assert (await c.delete(channel, headers=bearer(key))).status_code == 204  # 10
        over = await c.post(DISCORD, headers=bearer(key), json={"webhook_url": HOOK})
        assert over.status_code == 429 and int(over.headers["retry-after"]) <= 60
        assert (await c.delete(f"/api/v1/user-webhooks/{hook.json()['id']}", headers=bearer(key))).status_code == 429


async def test_refused_changes_do_not_use_up_the_budget(db_url: str) -> None:
    _, key = await user_with_key(db_url, "refused@example.com", tier="team")
    _, free = await user_with_key(db_url, "refused-free@example.com")
    async with running(settings_for(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS="1")) as (_, c):
        refused = [
            await c.post("/api/v1/user-webhooks", headers=bearer(key), json={"url": "ftp://example.com/x"}),
            await c.post("/api/v1/user-webhooks", headers=bearer(key), json={"nope": 1}),
            await c.post(DISCORD, headers=bearer(key), json={"webhook_url": "https://example.com/not-discord"}),
            await c.patch(f"{DISCORD}/1", headers=bearer(key), json={"filters": {"min_amount_usd": "lots"}}),
        ] * 1
        for _ in range(3):
            refused.append(await c.post("/api/v1/user-webhooks", headers=bearer(free), json={"url": HOOK}))
        assert [r.status_code for r in refused] == [422, 422, 422, 422, 403, 403, 403]
        for n in range(10):  # the whole budget is still there
            r = await c.post(
                "/api/v1/user-webhooks" if n < 5 else DISCORD,
                headers=bearer(key),
                json={"url": f"{HOOK}/{n}"} if n < 5 else {"webhook_url": f"{HOOK}/{n}"},
            )
            assert r.status_code == 201, r.text
        over = await c.post(DISCORD, headers=bearer(key), json={"webhook_url": HOOK})
        assert over.status_code == 429
        for _ in range(10):  # the free user's refusals gave theirs back too
            r = await c.post("/api/v1/user-webhooks", headers=bearer(free), json={"url": HOOK})
            assert r.status_code == 403
        assert (await c.post("/api/v1/user-webhooks", headers=bearer(free), json={"url": HOOK})).status_code == 403
