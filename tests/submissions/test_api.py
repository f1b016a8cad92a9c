"""`POST /api/v1/submissions` on SQLite and PostgreSQL: acceptance, duplicates, validation, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from kamiyo.db import Database
from kamiyo.submissions import router as submissions_router
from tests.submissions.helpers import NEW_TX, body, public_count, seeded
from tests.support.app import running
from tests.support.users import bearer, settings_for, signup, user_with_key

SOLANA_SIG = "5" + "K" * 87


@pytest.fixture
async def key(db_url: str) -> dict[str, str]:
    _, raw = await user_with_key(db_url, "ada@example.com", tier="free")
    return bearer(raw)


async def test_a_missing_incident_is_held_for_review_out_of_public_data(
    app_client: httpx.AsyncClient, key: dict[str, str], database: Database
) -> None:
    before = await public_count(database)
    r = await app_client.post("/api/v1/submissions", json=body(), headers=key)
    assert r.status_code == 201, r.text
    sub = r.json()
    assert r.headers["location"] == f"/api/v1/submissions/{sub['id']}"
    assert sub["status"] == "pending" and sub["kind"] == "new" and sub["exploit_id"] is None
    assert sub["tx_hash"] == NEW_TX and sub["timestamp"] == "2026-11-20T14:03:11Z" and sub["category"] == "price_oracle"
    assert (await app_client.get(f"/exploits/{NEW_TX}")).status_code == 404
    assert await public_count(database) == before
    mine = (await app_client.get("/api/v1/submissions", headers=key)).json()
    assert [s["id"] for s in mine["data"]] == [sub["id"]] and mine["used_today"] == 1 and mine["daily_limit"] == 5
    assert (await app_client.get(f"/api/v1/submissions/{sub['id']}", headers=key)).json() == sub


async def test_another_users_submission_is_404(db_url: str, app_client: httpx.AsyncClient, key: dict[str, str]) -> None:
    sub = (await app_client.post("/api/v1/submissions", json=body(), headers=key)).json()
    _, other = await user_with_key(db_url, "bob@example.com")
    assert (await app_client.get(f"/api/v1/submissions/{sub['id']}", headers=bearer(other))).status_code == 404
    assert (await app_client.get("/api/v1/submissions", headers=bearer(other))).json()["data"] == []


async def test_a_known_tx_hash_makes_a_correction_of_that_exploit(
    app_client: httpx.AsyncClient, key: dict[str, str], database: Database
) -> None:
    euler = await seeded(database, "EulerFinance")
    upper = "0x" + euler["tx_hash"][2:].upper()
    r = await app_client.post(
        "/api/v1/submissions", json=body(tx_hash=upper, protocol="Euler", amount_usd=197_000_000), headers=key
    )
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "correction" and r.json()["exploit_id"] == euler["id"]
    assert r.json()["tx_hash"] == euler["tx_hash"]


async def test_same_protocol_time_and_loss_without_a_hash_makes_a_correction(
    app_client: httpx.AsyncClient, key: dict[str, str], database: Database
) -> None:
    strong = await seeded(database, "StrongBlock")  # stored without a tx hash
    when = (strong["timestamp"] + timedelta(days=1, hours=3)).isoformat()
    r = await app_client.post(
        "/api/v1/submissions",
        json=body(tx_hash=None, protocol="Strong Block", timestamp=when, amount_usd=80_000),
        headers=key,
    )
    assert r.status_code == 201 and r.json()["kind"] == "correction" and r.json()["exploit_id"] == strong["id"]
    far = (strong["timestamp"] + timedelta(days=30)).isoformat()
    other = await app_client.post(
        "/api/v1/submissions", json=body(tx_hash=None, protocol="StrongBlock", timestamp=far), headers=key
    )
    assert other.status_code == 201 and other.json()["kind"] == "new"


async def test_naming_an_exploit_makes_a_correction_and_is_checked(
    app_client: httpx.AsyncClient, key: dict[str, str], database: Database
) -> None:
    strong, euler = await seeded(database, "StrongBlock"), await seeded(database, "EulerFinance")
    named = await app_client.post(
        "/api/v1/submissions", json=body(tx_hash=None, exploit_id=strong["id"], amount_usd=1), headers=key
    )
    assert named.status_code == 201 and named.json()["exploit_id"] == strong["id"]
    missing = await app_client.post("/api/v1/submissions", json=body(exploit_id=10**12), headers=key)
    assert missing.status_code == 422 and missing.json()["error"]["message"].startswith("exploit_id")
    clash = await app_client.post(
        "/api/v1/submissions", json=body(tx_hash=euler["tx_hash"], exploit_id=strong["id"]), headers=key
    )
    assert clash.status_code == 409 and clash.json()["error"]["details"]["exploit_id"] == euler["id"]


BAD = [
    ({"tx_hash": "0x1234"}, "tx_hash", "0x followed by 64 hex"),
    ({"tx_hash": SOLANA_SIG}, "tx_hash", "ethereum"),
    ({"chain": "solana", "tx_hash": NEW_TX}, "tx_hash", "base58"),
    ({"chain": "narnia"}, "chain", "unknown chain"),
    ({"amount_usd": -1}, "amount_usd", ""),
    ({"amount_usd": 1e15}, "amount_usd", ""),
    ({"amount_usd": "lots"}, "amount_usd", ""),
    ({"timestamp": "yesterday"}, "timestamp", "ISO-8601"),
    ({"timestamp": "2999-01-01"}, "timestamp", "between"),
    ({"timestamp": "2001-01-01"}, "timestamp", "between"),
    ({"category": "hack"}, "category", "unknown category"),
    ({"protocol": ""}, "protocol", ""),
    ({"protocol": "Free money https://spam.example"}, "protocol", "links"),
    ({"protocol": "Bad\x00name"}, "protocol", "control"),
    ({"description": " ".join(f"https://spam{i}.example" for i in range(5))}, "description", "links"),
    ({"attacker_address": "0x12"}, "attacker_address", "not an address"),
    ({"evidence_urls": ["javascript:alert(1)"]}, "evidence_urls", "http"),
    ({"evidence_urls": ["data:text/html,<script>alert(1)</script>"]}, "evidence_urls", "http"),
    ({"evidence_urls": ["ftp://example.org/file"]}, "evidence_urls", "http"),
    ({"evidence_urls": ["https://user:pw@example.org/x"]}, "evidence_urls", "user name"),
    ({"evidence_urls": ["https://localhost/x"]}, "evidence_urls", "host name"),
    ({"evidence_urls": ["https://example.org/a b"]}, "evidence_urls", "spaces"),
    ({"evidence_urls": []}, "evidence_urls", ""),
    ({"evidence_urls": [f"https://example.org/{i}" for i in range(11)]}, "evidence_urls", ""),
    ({"is_admin": True}, "is_admin", ""),
]


@pytest.mark.input_matrix
@pytest.mark.parametrize(("changes", "field", "words"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
async def test_bad_input_is_422_naming_the_field(
    app_client: httpx.AsyncClient, key: dict[str, str], changes: dict[str, object], field: str, words: str
) -> None:
    r = await app_client.post("/api/v1/submissions", json=body(**changes), headers=key)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid" and error["message"].startswith(field) and words in error["message"]


async def test_missing_fields_and_non_json_are_422(app_client: httpx.AsyncClient, key: dict[str, str]) -> None:
    missing = await app_client.post("/api/v1/submissions", json={"chain": "ethereum"}, headers=key)
    assert missing.status_code == 422
    assert {d["field"] for d in missing.json()["error"]["details"]} >= {"protocol", "timestamp", "evidence_urls"}
    garbage = await app_client.post("/api/v1/submissions", content=b"{not json", headers=key)
    assert garbage.status_code == 422


async def test_an_oversized_body_is_413_whether_declared_or_streamed(
    app_client: httpx.AsyncClient, key: dict[str, str]
) -> None:
    big = body(description="x" * 100_000)
    declared = await app_client.post("/api/v1/submissions", json=big, headers=key)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 8192

    streamed = await app_client.post(
        "/api/v1/submissions", content=chunks(), headers=key | {"content-type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_anonymous_is_401_and_a_cookie_without_csrf_is_403(app_client: httpx.AsyncClient) -> None:
    anonymous = await app_client.post("/api/v1/submissions", json=body())
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    session = await signup(app_client, "web@example.com")
    no_token = await app_client.post("/api/v1/submissions", json=body())
    assert no_token.status_code == 403
    ok = await app_client.post("/api/v1/submissions", json=body(), headers={"X-CSRF-Token": session["csrf_token"]})
    assert ok.status_code == 201


async def test_a_repeat_of_a_pending_submission_is_409(app_client: httpx.AsyncClient, key: dict[str, str]) -> None:
    assert (await app_client.post("/api/v1/submissions", json=body(), headers=key)).status_code == 201
    again = await app_client.post("/api/v1/submissions", json=body(protocol="Other name"), headers=key)
    assert again.status_code == 409 and "awaiting review" in again.json()["error"]["message"]
    no_hash = body(tx_hash=None, protocol="Wombat Swap")
    assert (await app_client.post("/api/v1/submissions", json=no_hash, headers=key)).status_code == 201
    assert (await app_client.post("/api/v1/submissions", json=no_hash, headers=key)).status_code == 409


async def test_the_daily_cap_follows_the_tier(db_url: str, app_client: httpx.AsyncClient, key: dict[str, str]) -> None:
    answers = [
        await app_client.post(
            "/api/v1/submissions", json=body(tx_hash=f"0x{i:064x}", protocol=f"Spam {i}"), headers=key
        )
        for i in range(1, 7)
    ]
    assert [r.status_code for r in answers] == [201] * 5 + [429]
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) > 0 and "daily limit of 5" in refused.json()["error"]["message"]
    _, pro = await user_with_key(db_url, "pro@example.com", tier="pro")
    assert (await app_client.post("/api/v1/submissions", json=body(), headers=bearer(pro))).status_code == 201
    assert (await app_client.get("/api/v1/submissions", headers=bearer(pro))).json()["daily_limit"] == 20


async def test_bursts_are_rate_limited_per_user(db_url: str) -> None:
    user_id, raw = await user_with_key(db_url, "burst@example.com", tier="free")
    async with running(settings_for(db_url)) as (app, c):
        rate = submissions_router.SUBMIT_RATE
        await app.state.limiter.hit("submissions", str(user_id), rate, cost=rate.amount - 2)  # two left this minute
        codes = []
        for i in range(1, 4):
            r = await c.post("/api/v1/submissions", json=body(tx_hash=f"0x{i:064x}"), headers=bearer(raw))
            codes.append(r.status_code)
        assert codes == [201, 201, 429]
        assert f"at most {rate.amount} submissions a minute" in r.json()["error"]["message"]


async def test_text_is_stored_exactly_as_plain_text(app_client: httpx.AsyncClient, key: dict[str, str]) -> None:
    description = "<script>alert(1)</script>\nLine two & <b>bold</b>"
    r = await app_client.post(
        "/api/v1/submissions", json=body(description=description, protocol="<i>Quokka</i>"), headers=key
    )
    assert r.status_code == 201
    assert r.json()["description"] == description and r.json()["protocol"] == "<i>Quokka</i>"
    assert r.headers["content-type"].startswith("application/json")
