"""Quotas and rate limits: per-user daily tier quota, per-IP anonymous limit, webhook-mutation limit."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends

from kamiyo.accounts.deps import limit_webhook_mutations, per_user_limit, require_feature
from kamiyo.accounts.models import User
from kamiyo.db import Database
from kamiyo.delivery import plan_limits
from kamiyo.kit.ratelimit import parse_rate
from tests.support.app import running
from tests.support.users import bearer, settings_for, user_with_key


def _next_utc_midnight() -> int:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return int(datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC).timestamp())


async def test_free_quota_runs_out_at_the_101st_request_while_pro_goes_on(db_url: str) -> None:
    _, free = await user_with_key(db_url, "free@example.com")
    _, pro = await user_with_key(db_url, "pro@example.com", tier="pro")
    async with running(settings_for(db_url)) as (_, c):
        for n in range(1, 101):
            r = await c.get("/api/v1/exploits?page_size=1", headers=bearer(free))
            assert r.status_code == 200, n
            assert r.headers["x-ratelimit-limit"] == "100"
            assert r.headers["x-ratelimit-remaining"] == str(100 - n)
            assert r.headers["x-ratelimit-reset"] == str(_next_utc_midnight())
        over = await c.get("/api/v1/exploits?page_size=1", headers=bearer(free))
        assert over.status_code == 429
        assert over.json()["error"]["code"] == "rate_limited"
        assert 0 < int(over.headers["retry-after"]) <= 86_400
        assert abs(int(over.headers["retry-after"]) - (_next_utc_midnight() - time.time())) < 5
        assert over.headers["x-ratelimit-remaining"] == "0"
        assert (await c.get("/api/v1/me", headers=bearer(free))).status_code == 429  # every keyed path counts
        ok = await c.get("/exploits?page_size=1", headers=bearer(pro))
        assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining"] == "9999"


async def test_quota_is_per_account_so_extra_keys_do_not_multiply_it(db_url: str, database: Database) -> None:
    _, first = await user_with_key(db_url, "two@example.com")
    async with running(settings_for(db_url)) as (_, c):
        second = (await c.post("/api/v1/keys", headers=bearer(first), json={})).json()["key"]
        r = await c.get("/api/v1/me", headers=bearer(second))
        assert r.headers["x-ratelimit-remaining"] == "98"
        assert r.json()["usage"] == {"requests_today": 2, "remaining": 98, "reset": _next_utc_midnight()}


async def test_a_higher_tier_applies_at_once_and_keeps_todays_count(db_url: str, database: Database) -> None:
    user_id, key = await user_with_key(db_url, "up@example.com")
    async with running(settings_for(db_url)) as (_, c):
        assert (await c.get("/api/v1/me", headers=bearer(key))).headers["x-ratelimit-limit"] == "100"
        async with database.session() as session:
            user = await session.get(User, user_id)
            assert user is not None
            await plan_limits.set_tier(session, user, "team")
        r = await c.get("/api/v1/me", headers=bearer(key))
        assert r.headers["x-ratelimit-limit"] == "100000" and r.headers["x-ratelimit-remaining"] == "99998"
        assert r.json()["limits"]["webhooks"] == 5 and r.json()["tier"] == "team"


async def test_anonymous_clients_are_limited_per_ip(db_url: str) -> None:
    settings = settings_for(db_url, KAMIYO_ANON_RATE_LIMIT="5/minute")
    async with running(settings) as (app, c):
        codes = [(await c.get("/exploits?page_size=1")).status_code for _ in range(5)]
        assert codes == [200] * 5
        over = await c.get("/api/v1/stats")
        assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 60
        assert over.headers["x-ratelimit-limit"] == "5" and over.json()["error"]["code"] == "rate_limited"
        import httpx

        other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 1)), base_url="http://t")
        async with other:
            assert (await other.get("/exploits?page_size=1")).status_code == 200


async def test_health_docs_metrics_static_and_stripe_webhook_do_not_count(db_url: str) -> None:
    settings = settings_for(db_url, KAMIYO_ANON_RATE_LIMIT="2/minute")
    async with running(settings) as (_, c):
        for _ in range(3):
            for path in ("/health", "/ping", "/api/v1/ping", "/openapi.json", "/docs", "/metrics"):
                r = await c.get(path)
                assert "x-ratelimit-limit" not in r.headers, path
                assert r.status_code != 429, path
            r = await c.post("/api/v1/payments/stripe-webhook", content=b"{}")
            assert r.status_code != 429 and "x-ratelimit-limit" not in r.headers
        assert (await c.get("/exploits?page_size=1")).headers["x-ratelimit-remaining"] == "1"


async def test_rate_limits_off_disables_counting_but_not_authentication(db_url: str) -> None:
    _, key = await user_with_key(db_url, "bench@example.com")
    settings = settings_for(db_url, KAMIYO_RATE_LIMITS="off", KAMIYO_ANON_RATE_LIMIT="1/minute")
    async with running(settings) as (_, c):
        for _ in range(3):
            r = await c.get("/exploits?page_size=1")
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        assert (await c.get("/api/v1/me", headers=bearer(key))).status_code == 200
        assert (await c.get("/exploits", headers=bearer("kmy_bad"))).status_code == 401


async def test_webhook_mutations_are_limited_to_ten_a_minute_per_user(db_url: str) -> None:
    router = APIRouter()

    @router.post("/api/v1/test-hooks", dependencies=[Depends(limit_webhook_mutations)])
    async def mutate() -> dict[str, bool]:
        return {"ok": True}

    _, key = await user_with_key(db_url, "hooks@example.com", tier="team")
    _, other = await user_with_key(db_url, "hooks2@example.com", tier="team")
    async with running(settings_for(db_url), routers=[router]) as (_, c):
        codes = [(await c.post("/api/v1/test-hooks", headers=bearer(key))).status_code for _ in range(10)]
        assert codes == [200] * 10
        over = await c.post("/api/v1/test-hooks", headers=bearer(key))
        assert over.status_code == 429 and int(over.headers["retry-after"]) <= 60
        assert over.headers.get_list("x-ratelimit-limit") == ["10"]  # the route's own limit, not doubled
        assert (await c.post("/api/v1/test-hooks", headers=bearer(other))).status_code == 200
        assert (await c.post("/api/v1/test-hooks")).status_code == 401


async def test_a_per_user_limit_counts_under_its_own_name_and_says_its_window(db_url: str) -> None:
    router = APIRouter()
    hourly = per_user_limit("test-tries", parse_rate("2/hour"), "tries")
    every_ten = per_user_limit("test-polls", parse_rate("1/10 minutes"), "polls")

    @router.post("/api/v1/test-tries", dependencies=[Depends(hourly)])
    async def tries() -> dict[str, bool]:
        return {"ok": True}

    @router.post("/api/v1/test-polls", dependencies=[Depends(every_ten)])
    async def polls() -> dict[str, bool]:
        return {"ok": True}

    _, key = await user_with_key(db_url, "tries@example.com")
    async with running(settings_for(db_url), routers=[router]) as (_, c):
        codes = [(await c.post("/api/v1/test-tries", headers=bearer(key))).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        over = await c.post("/api/v1/test-tries", headers=bearer(key))
        assert over.json()["error"]["message"].startswith("at most 2 tries an hour; retry in ")
        assert (await c.post("/api/v1/test-polls", headers=bearer(key))).status_code == 200  # a count of its own
        over = await c.post("/api/v1/test-polls", headers=bearer(key))
        assert over.status_code == 429 and "at most 1 polls per 10 minutes" in over.json()["error"]["message"]


async def test_feature_gate_refuses_lower_tiers(db_url: str) -> None:
    router = APIRouter()

    @router.get("/api/v1/test-stream", dependencies=[Depends(require_feature("live_stream"))])
    async def stream() -> dict[str, bool]:
        return {"ok": True}

    _, free = await user_with_key(db_url, "gate-free@example.com")
    _, pro = await user_with_key(db_url, "gate-pro@example.com", tier="pro")
    async with running(settings_for(db_url), routers=[router]) as (_, c):
        r = await c.get("/api/v1/test-stream", headers=bearer(free))
        assert r.status_code == 403 and r.json()["error"]["code"] == "tier_required"
        assert (await c.get("/api/v1/test-stream", headers=bearer(pro))).status_code == 200


async def test_an_invalid_anonymous_rate_falls_back_to_the_default(db_url: str) -> None:
    async with running(settings_for(db_url, KAMIYO_ANON_RATE_LIMIT="lots")) as (_, c):
        r = await c.get("/exploits?page_size=1")
        assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "60"
