"""`/api/v1/user-webhooks` as the contract says: CRUD (own only), tier limits, URL and filter validation."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from kamiyo.delivery.models import UserWebhook
from kamiyo.kit import ssrf
from tests.delivery.support import add_webhook, auth, delivery_settings
from tests.support.app import running
from tests.support.users import user_with_key

HOOK = "http://127.0.0.1:9/hook"  # loopback http is allowed in these settings; nothing is sent here


@pytest.fixture
def fake_dns() -> Iterator[dict[str, list[str]]]:
    """Names resolved from this dict (other names fail), like a hosts file the test controls."""
    answers: dict[str, list[str]] = {}

    async def resolve(host: str, port: int) -> list[str]:
        if host in answers:
            return answers[host]
        raise OSError(f"{host}: no such host")

    ssrf.set_resolver(resolve)
    yield answers
    ssrf.set_resolver(None)


async def test_create_shows_secret_once_and_stores_it_encrypted(db_url: str) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier="team")
        r = await c.post(
            "/api/v1/user-webhooks",
            headers=auth(key),
            json={"url": HOOK, "description": "ops", "filters": {"chains": ["BSC", "ethereum"], "min_amount_usd": 5}},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["secret"].startswith("whsec_") and len(base64.b64decode(body["secret"][6:])) == 32
        assert body["filters"] == {
            "min_amount_usd": 5.0,
            "chains": ["bsc", "ethereum"],
            "protocols": [],
            "categories": [],
        }
        assert body["enabled"] is True and body["url"] == HOOK and body["description"] == "ops"
        listed = (await c.get("/api/v1/user-webhooks", headers=auth(key))).json()
        assert [h["id"] for h in listed["data"]] == [body["id"]] and listed["limit"] == 5
        assert "secret" not in listed["data"][0]
        assert "secret" not in (await c.get(f"/api/v1/user-webhooks/{body['id']}", headers=auth(key))).json()
        async with app.state.db.session() as session:
            stored = (await session.execute(select(UserWebhook.secret_enc))).scalar_one()
        assert body["secret"] not in stored and body["secret"][6:] not in stored


async def test_unauthenticated_calls_are_401(db_url: str) -> None:
    async with running(delivery_settings(db_url), workers=False) as (_, c):
        r = await c.get("/api/v1/user-webhooks")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert (await c.post("/api/v1/user-webhooks", json={"url": HOOK})).status_code == 401


@pytest.mark.parametrize(("tier", "limit"), [("free", 0), ("pro", 0), ("team", 5)])
async def test_tier_limit_is_403_with_the_limit_in_the_message(db_url: str, tier: str, limit: int) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier=tier)
        for _ in range(limit):
            assert (await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": HOOK})).status_code == 201
        r = await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": HOOK})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "limit_reached" and f"allows {limit} " in r.json()["error"]["message"]


async def test_enterprise_allows_fifty(db_url: str) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        user_id, key = await user_with_key(app.state.db, tier="enterprise")
        for _ in range(49):
            await add_webhook(app.state.db, user_id, HOOK)
        assert (await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": HOOK})).status_code == 201
        r = await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": HOOK})
        assert r.status_code == 403 and "allows 50 " in r.json()["error"]["message"]


async def test_another_users_webhook_is_404_everywhere(db_url: str) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        owner, _ = await user_with_key(app.state.db, tier="team")
        _, other_key = await user_with_key(app.state.db, tier="team")
        hook_id, _ = await add_webhook(app.state.db, owner, HOOK)
        h = auth(other_key)
        base = f"/api/v1/user-webhooks/{hook_id}"
        answers = [
            await c.get(base, headers=h),
            await c.patch(base, headers=h, json={"description": "mine now"}),
            await c.delete(base, headers=h),
            await c.post(f"{base}/rotate-secret", headers=h),
            await c.post(f"{base}/test", headers=h),
            await c.get(f"{base}/deliveries", headers=h),
            await c.post(f"{base}/deliveries/1/retry", headers=h),
        ]
        assert [a.status_code for a in answers] == [404] * len(answers)
        assert all(str(HOOK) not in a.text for a in answers)
        assert (await c.get("/api/v1/user-webhooks", headers=h)).json()["data"] == []


async def test_patch_changes_fields_and_reenabling_clears_the_reason(db_url: str) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        user_id, key = await user_with_key(app.state.db, tier="team")
        hook_id, _ = await add_webhook(app.state.db, user_id, HOOK)
        async with app.state.db.session() as session:
            hook = await session.get(UserWebhook, hook_id)
            assert hook is not None
            hook.enabled, hook.disabled_reason, hook.consecutive_failures = False, "the endpoint answered 410 Gone", 3
        base = f"/api/v1/user-webhooks/{hook_id}"
        shown = (await c.get(base, headers=auth(key))).json()
        assert shown["enabled"] is False and shown["disabled_reason"] == "the endpoint answered 410 Gone"
        r = await c.patch(
            base, headers=auth(key), json={"enabled": True, "filters": {"categories": ["bridge"]}, "description": "x"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["enabled"] and body["disabled_reason"] is None and body["consecutive_failures"] == 0
        assert body["filters"]["categories"] == ["bridge"] and body["description"] == "x"
        assert (await c.delete(base, headers=auth(key))).status_code == 204
        assert (await c.get(base, headers=auth(key))).status_code == 404


@pytest.mark.input_matrix
@pytest.mark.parametrize(
    "filters",
    [
        {"chains": ["not-a-chain"]},
        {"categories": ["nonsense"]},
        {"min_amount_usd": -1},
        {"min_amount_usd": "lots"},
        {"min_amount_usd": 1e300},
        {"chains": "ethereum"},
        {"protocols": ["x" * 201]},
        {"chains": ["ethereum"] * 51},
        {"protocols": [f"p{i}" for i in range(10_000)]},
        {"unknown": 1},
        ["ethereum"],
        "all",
    ],
)
async def test_malformed_or_oversized_filters_are_422(db_url: str, filters: object) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        user_id, key = await user_with_key(app.state.db, tier="team")
        r = await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": HOOK, "filters": filters})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"
        hook_id, _ = await add_webhook(app.state.db, user_id, HOOK)
        r = await c.patch(f"/api/v1/user-webhooks/{hook_id}", headers=auth(key), json={"filters": filters})
        assert r.status_code == 422


@pytest.mark.input_matrix
@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.8/hook",
        "https://192.168.1.1/",
        "https://172.16.5.4/",
        "https://100.64.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:169.254.169.254]/",
        "https://[fd00::1]/",
        "https://[fe80::1]/",
        "https://224.0.0.1/",
        "https://0.0.0.0/",
        "https://240.0.0.1/",
        "https://2130706433/",
        "https://127.1/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://user:pass@hooks.example.com/",
        "ftp://hooks.example.com/",
        "not a url",
        "https://",
        "https://loopback.example/hook",
        "https://private.example/hook",
        "https://mixed.example/hook",
    ],
)
async def test_unsafe_urls_are_refused_at_creation(db_url: str, fake_dns: dict[str, list[str]], url: str) -> None:
    fake_dns.update(
        {
            "loopback.example": ["127.0.0.1"],
            "private.example": ["10.1.2.3"],
            "mixed.example": ["93.184.216.34", "192.168.0.10"],
            "hooks.example.com": ["93.184.216.34"],
        }
    )
    async with running(delivery_settings(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS=False), workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier="team")
        r = await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": url})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["message"].startswith("url: ")


@pytest.mark.input_matrix
@pytest.mark.parametrize(
    ("url", "allow_http", "status"),
    [
        ("http://127.0.0.1:9/hook", False, 422),
        ("http://localhost:9/hook", False, 422),
        ("https://localhost/hook", False, 422),
        ("https://hooks.example.com/kamiyo", False, 201),
        ("http://hooks.example.com/kamiyo", False, 422),
        ("http://hooks.example.com/kamiyo", True, 422),  # plain http only to loopback
        ("http://127.0.0.1:9/hook", True, 201),
        ("http://localhost:9/hook", True, 201),
        ("http://10.0.0.1/hook", True, 422),  # the test switch allows loopback, nothing else
        ("https://[::ffff:127.0.0.1]/hook", True, 422),
    ],
)
async def test_https_only_and_loopback_only_with_the_test_switch(
    db_url: str, fake_dns: dict[str, list[str]], url: str, allow_http: bool, status: int
) -> None:
    fake_dns.update({"hooks.example.com": ["93.184.216.34"], "localhost": ["127.0.0.1", "::1"]})
    async with running(delivery_settings(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS=allow_http), workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier="team")
        r = await c.post("/api/v1/user-webhooks", headers=auth(key), json={"url": url})
        assert r.status_code == status, r.text


async def test_rotate_secret_returns_a_new_secret_and_a_24h_window(db_url: str) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        user_id, key = await user_with_key(app.state.db, tier="team")
        hook_id, old = await add_webhook(app.state.db, user_id, HOOK)
        r = await c.post(f"/api/v1/user-webhooks/{hook_id}/rotate-secret", headers=auth(key))
        assert r.status_code == 200
        new = r.json()["secret"]
        assert new.startswith("whsec_") and new != old
        until = datetime.fromisoformat(r.json()["previous_secret_expires_at"].replace("Z", "+00:00"))
        assert 23.9 * 3600 < (until - datetime.now(UTC)).total_seconds() <= 24 * 3600
        shown = (await c.get(f"/api/v1/user-webhooks/{hook_id}", headers=auth(key))).json()
        assert shown["previous_secret_expires_at"] is not None and "secret" not in shown


async def test_mutations_are_rate_limited_to_ten_a_minute(db_url: str) -> None:
    async with running(delivery_settings(db_url, KAMIYO_RATE_LIMITS="on"), workers=False) as (app, c):
        user_id, key = await user_with_key(app.state.db, tier="team")
        hook_id, _ = await add_webhook(app.state.db, user_id, HOOK)
        codes = [
            (
                await c.patch(f"/api/v1/user-webhooks/{hook_id}", headers=auth(key), json={"description": str(i)})
            ).status_code
            for i in range(11)
        ]
        assert codes[:10] == [200] * 10 and codes[10] == 429


async def test_path_ids_out_of_range_are_422_not_500(db_url: str) -> None:
    async with running(delivery_settings(db_url), workers=False) as (app, c):
        _, key = await user_with_key(app.state.db, tier="team")
        for path in ("/api/v1/user-webhooks/0", "/api/v1/user-webhooks/abc", f"/api/v1/user-webhooks/{2**70}"):
            assert (await c.get(path, headers=auth(key))).status_code == 422
