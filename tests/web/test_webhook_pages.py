"""`/app/webhooks` through the real app on SQLite and PostgreSQL: forms, inline errors, CSRF, tiers, the log.

Receivers are real aiohttp servers on 127.0.0.1 (`KAMIYO_ALLOW_HTTP_WEBHOOKS=1`); messages they get are
verified with the `standardwebhooks` library, using the secret exactly as the page showed it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook

from kamiyo.delivery.models import UserWebhook
from tests.delivery.support import Receiver, ingest, report, wait_until
from tests.support.app import running
from tests.support.users import PASSWORD, add_user, settings_for
from tests.web.test_account_pages import csrf_of, error_of, form_error_of, post_form

TEAM = "owner@example.com"
PAGE_ENV: dict[str, Any] = {"KAMIYO_ALLOW_HTTP_WEBHOOKS": True, "KAMIYO_RATE_LIMITS": "off"}


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def secret_of(html: str) -> str:
    match = re.search(r'<code id="webhook-secret">(whsec_[^<]+)</code>', html)
    assert match, "no secret on the page"
    return match.group(1)


def action_error_of(html: str) -> str:
    match = re.search(r'<p class="card notice notice-bad" role="alert">(.*?)</p>', html, re.S)
    return unescape(match.group(1)) if match else ""


def hook_id_of(html: str) -> int:
    match = re.search(r'action="/app/webhooks/(\d+)/test"', html)
    assert match, "not an endpoint page"
    return int(match.group(1))


async def log_in(app: FastAPI, email: str) -> httpx.AsyncClient:
    """Another browser on the same app, logged in through the page."""
    c = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50001)), base_url="http://testserver"
    )
    r = await post_form(c, "/login", "/login", email=email, password=PASSWORD)
    assert r.status_code == 303, r.text
    return c


@asynccontextmanager
async def signed_in(
    db_url: str, tier: str = "team", email: str = TEAM, **env: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    await add_user(db_url, email, tier=tier)
    async with running(settings_for(db_url, **(PAGE_ENV | env))) as (app, c):
        r = await post_form(c, "/login", "/login", email=email, password=PASSWORD)
        assert r.status_code == 303, r.text
        yield app, c


async def create(c: httpx.AsyncClient, url: str, **fields: Any) -> httpx.Response:
    token = csrf_of((await c.get("/app/webhooks")).text)
    return await c.post("/app/webhooks", data={"csrf_token": token, "url": url, "enabled": "1", **fields})


async def act(c: httpx.AsyncClient, hook_id: int, action: str, **fields: Any) -> httpx.Response:
    token = csrf_of((await c.get(f"/app/webhooks/{hook_id}")).text)
    return await c.post(f"/app/webhooks/{hook_id}/{action}".rstrip("/"), data={"csrf_token": token, **fields})


async def stored(c: httpx.AsyncClient, hook_id: int) -> dict[str, Any]:
    """The endpoint as the JSON API shows it (the session cookie authenticates reads)."""
    r = await c.get(f"/api/v1/user-webhooks/{hook_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_visitors_are_sent_to_login(db_url: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        for path in ("/app/webhooks", "/app/webhooks/1", "/app/alerts", "/app/alerts/discord/1"):
            r = await c.get(path)
            assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"
        assert (await c.post("/app/webhooks", data={"url": "https://x.example"})).status_code == 303


@pytest.mark.parametrize("tier", ["free", "pro"])
async def test_plans_without_webhooks_see_why_and_a_link_to_pricing_not_a_form(db_url: str, tier: str) -> None:
    async with signed_in(db_url, tier) as (_, c):
        html = (await c.get("/app/webhooks")).text
        assert "Webhooks are part of the Team or Enterprise plans" in html
        assert f"Your {tier.title()} plan includes no webhook endpoints" in html
        assert 'href="/pricing"' in html and 'action="/app/webhooks"' not in html
        r = await c.post("/app/webhooks", data={"csrf_token": csrf_of(html), "url": "http://127.0.0.1:9/x"})
        assert r.status_code == 403 and "plan allows 0 webhook endpoints" in form_error_of(r.text)
        assert (await c.get("/api/v1/user-webhooks")).json()["data"] == []


async def test_team_user_creates_an_endpoint_with_filters_and_sees_the_secret_once(db_url: str) -> None:
    async with signed_in(db_url) as (_, c):
        assert "0 of 5" not in (await c.get("/app/webhooks")).text  # no list before the first endpoint
        fields = {"description": "SOC pager", "min_amount_usd": "$1,000,000", "protocols": "Curve, Euler Finance"}
        r = await create(c, "http://127.0.0.1:9/hook", **fields, chains=["bsc", "ethereum"], categories="flash_loan")
        assert r.status_code == 201, form_error_of(r.text) or r.text[-2000:]
        secret = secret_of(r.text)
        assert secret.startswith("whsec_") and "it will not be shown again" in r.text
        hook_id = hook_id_of(r.text)
        body = await stored(c, hook_id)
        assert body["url"] == "http://127.0.0.1:9/hook" and body["description"] == "SOC pager" and body["enabled"]
        assert body["filters"] == {
            "min_amount_usd": 1_000_000.0,
            "chains": ["bsc", "ethereum"],
            "protocols": ["curve", "euler finance"],
            "categories": ["flash_loan"],
        }
        page = (await c.get(f"/app/webhooks/{hook_id}")).text
        assert secret not in page and secret[6:] not in page
        summary = "at least $1M · on BNB Smart Chain, Ethereum · Flash loan · protocols curve, euler finance"
        assert summary in text_of(page)
        assert 'value="1000000"' in page and 'value="bsc" checked' in page  # the edit form is filled in
        listing = text_of((await c.get("/app/webhooks")).text)
        assert "1 of 5 on the Team plan" in listing and "http://127.0.0.1:9/hook" in listing and "Enabled" in listing


async def test_invalid_fields_are_shown_next_to_them_and_nothing_is_stored(db_url: str) -> None:
    cases = [
        ({"url": ""}, "url", "Enter the https:// URL of your receiver"),
        ({"url": "ftp://files.example/x"}, "url", "Only https:// URLs are allowed"),
        ({"url": "http://93.184.216.34/hook"}, "url", "Only https:// URLs are allowed"),
        ({"url": "https://10.1.2.3/hook"}, "url", "10.1.2.3 resolves to a private address, which is not allowed"),
        ({"url": "https://169.254.169.254/latest"}, "url", "link-local address"),
        ({"min_amount_usd": "lots"}, "min_amount_usd", "Enter a number of US dollars, e.g. 1000000"),
        ({"min_amount_usd": "-5"}, "min_amount_usd", "Must be at least 0"),
        ({"chains": "atlantis"}, "chains", "Unknown chain 'atlantis'"),
        ({"categories": "vibes"}, "categories", "Unknown category 'vibes'"),
        ({"protocols": "x" * 201}, "protocols", "Protocol names are at most 200 characters"),
        ({"description": "d" * 501}, "description", "At most 500 characters"),
    ]
    async with signed_in(db_url) as (_, c):
        for fields, field, message in cases:
            data = {"url": "http://127.0.0.1:9/ok", "description": "kept", **fields}
            r = await create(c, **data)
            assert r.status_code == 422, (fields, r.status_code)
            assert message in error_of(r.text, field), (fields, error_of(r.text, field))
            assert f'aria-describedby="err-{field}"' in r.text
            if field != "description":
                assert 'value="kept"' in r.text  # what was typed is kept
        assert (await c.get("/api/v1/user-webhooks")).json()["data"] == []


async def test_plain_http_to_loopback_needs_the_test_setting(db_url: str) -> None:
    async with signed_in(db_url, KAMIYO_ALLOW_HTTP_WEBHOOKS=False) as (_, c):
        r = await create(c, "http://127.0.0.1:9/hook")
        assert r.status_code == 422 and error_of(r.text, "url") == "Only https:// URLs are allowed"
        r = await create(c, "https://127.0.0.1:9/hook")
        assert r.status_code == 422 and "loopback address" in error_of(r.text, "url")
        r = await create(c, "https://93.184.216.34/hook")  # a public literal address needs no DNS
        assert r.status_code == 201


async def test_edit_saves_url_description_and_filters_and_refuses_bad_values_inline(db_url: str) -> None:
    new_url = "http://127.0.0.1:9/new"
    async with signed_in(db_url) as (_, c):
        hook_id = hook_id_of((await create(c, "http://127.0.0.1:9/old", description="old")).text)
        r = await act(c, hook_id, "", url=new_url, description="new", chains="solana")
        assert r.status_code == 303 and r.headers["location"] == f"/app/webhooks/{hook_id}?done=saved"
        assert "Changes saved." in (await c.get(r.headers["location"])).text
        body = await stored(c, hook_id)
        assert (body["url"], body["description"], body["filters"]["chains"]) == (new_url, "new", ["solana"])

        bad = await act(c, hook_id, "", url=new_url, description="typed", min_amount_usd="1e99")
        assert bad.status_code == 422 and error_of(bad.text, "min_amount_usd") == "Must be at most 10,000,000,000,000"
        assert 'value="typed"' in bad.text and 'value="1e99"' in bad.text  # what was typed is kept
        bad = await act(c, hook_id, "", url="https://192.168.1.10/x", description="typed")
        assert bad.status_code == 422 and "private address" in error_of(bad.text, "url")
        body = await stored(c, hook_id)
        assert (body["url"], body["description"], body["filters"]["min_amount_usd"]) == (new_url, "new", None)


async def test_disable_and_enable_from_the_page(db_url: str) -> None:
    async with signed_in(db_url) as (_, c):
        hook_id = hook_id_of((await create(c, "http://127.0.0.1:9/hook")).text)
        r = await act(c, hook_id, "disable")
        assert r.status_code == 303 and r.headers["location"].endswith("?done=disabled")
        page = text_of((await c.get(r.headers["location"])).text)
        assert "Disabled by you: nothing is sent until you enable it again." in page and "Enable" in page
        assert (await stored(c, hook_id))["enabled"] is False
        r = await act(c, hook_id, "enable")
        assert r.status_code == 303 and (await stored(c, hook_id))["enabled"] is True


async def test_send_test_reaches_the_receiver_signed_and_appears_in_the_log(db_url: str) -> None:
    async with Receiver() as rx, signed_in(db_url) as (_, c):
        created = await create(c, rx.url + "/kamiyo")
        secret, hook_id = secret_of(created.text), hook_id_of(created.text)
        r = await act(c, hook_id, "test")
        assert r.status_code == 303 and re.search(rf"/app/webhooks/{hook_id}\?test=\d+$", r.headers["location"])
        [got] = rx.requests
        event = Webhook(secret).verify(got.body, got.headers)
        assert event["type"] == "webhook.test" and got.path == "/kamiyo"
        page = (await c.get(r.headers["location"])).text
        outcome = text_of(re.search(r'<p [^>]*id="test-outcome">.*?</p>', page, re.S).group(0))  # type: ignore[union-attr]
        assert re.search(r"Test event delivered: your endpoint answered HTTP 200 in \d+ ms", outcome)
        row = text_of(re.search(r'<tr id="delivery-\d+" class="is-highlight">.*?</tr>', page, re.S).group(0))  # type: ignore[union-attr]
        assert "Test" in row and "Succeeded" in row and " 1 " in row and "200" in row and re.search(r"\d+ ms", row)
        assert "/replay" not in page  # a test is not replayable: send a new one


async def test_an_endpoint_answering_410_is_disabled_and_the_page_says_why(db_url: str) -> None:
    async with Receiver(lambda _r, _n: (410, {}, 0.0)) as rx, signed_in(db_url) as (_, c):
        hook_id = hook_id_of((await create(c, rx.url + "/gone")).text)
        r = await act(c, hook_id, "test")
        page = text_of((await c.get(r.headers["location"])).text)
        assert "Test event failed: your endpoint answered HTTP 410" in page
        assert "Disabled by Kamiyo" in page and "Why it was disabled: the endpoint answered 410 Gone" in page
        assert "Disabled by Kamiyo: the endpoint answered 410 Gone" in text_of((await c.get("/app/webhooks")).text)
        await act(c, hook_id, "enable")
        body = await stored(c, hook_id)
        assert body["enabled"] is True and body["disabled_reason"] is None


async def test_rotation_shows_a_new_secret_once_and_both_sign_for_a_day(db_url: str) -> None:
    async with Receiver() as rx, signed_in(db_url) as (_, c):
        created = await create(c, rx.url + "/rot")
        old, hook_id = secret_of(created.text), hook_id_of(created.text)
        rotated = await act(c, hook_id, "rotate")
        assert rotated.status_code == 200
        new = secret_of(rotated.text)
        assert new != old and new.startswith("whsec_") and old not in rotated.text
        assert "The previous secret keeps signing beside the new one until" in text_of(rotated.text)
        page = (await c.get(f"/app/webhooks/{hook_id}")).text
        assert new not in page and old not in page and "rotated; the previous one also signs until" in text_of(page)
        await act(c, hook_id, "test")
        [got] = rx.requests
        assert Webhook(new).verify(got.body, got.headers)["type"] == "webhook.test"
        assert Webhook(old).verify(got.body, got.headers)["type"] == "webhook.test"


async def test_delete_removes_the_endpoint(db_url: str) -> None:
    async with signed_in(db_url) as (_, c):
        hook_id = hook_id_of((await create(c, "http://127.0.0.1:9/hook")).text)
        r = await act(c, hook_id, "delete")
        assert r.status_code == 303 and r.headers["location"] == "/app/webhooks?done=deleted"
        assert "The endpoint was deleted." in (await c.get(r.headers["location"])).text
        assert (await c.get("/api/v1/user-webhooks")).json()["data"] == []
        gone = await c.get(f"/app/webhooks/{hook_id}")
        assert gone.status_code == 404 and "Page not found" in gone.text


async def test_another_users_endpoint_is_a_404_page_for_every_action(db_url: str) -> None:
    await add_user(db_url, "other@example.com", tier="team")
    async with signed_in(db_url) as (app, c):
        created = await create(c, "http://127.0.0.1:9/mine", description="mine")
        hook_id = hook_id_of(created.text)
        other = await log_in(app, "other@example.com")
        try:
            page = await other.get(f"/app/webhooks/{hook_id}")
            assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
            assert "Page not found" in page.text and "127.0.0.1:9/mine" not in page.text
            token = csrf_of((await other.get("/app/webhooks")).text)
            for action in ("", "/enable", "/disable", "/test", "/rotate", "/delete", "/deliveries/1/replay"):
                r = await other.post(
                    f"/app/webhooks/{hook_id}{action}", data={"csrf_token": token, "url": "http://127.0.0.1:9/x"}
                )
                assert r.status_code == 404, action
        finally:
            await other.aclose()
        body = await stored(c, hook_id)
        assert body["url"] == "http://127.0.0.1:9/mine" and body["enabled"] is True


async def test_every_form_needs_the_csrf_token(db_url: str) -> None:
    async with signed_in(db_url) as (app, c):
        refused = await c.post("/app/webhooks", data={"url": "http://127.0.0.1:9/x"})
        assert refused.status_code == 403 and "expired or did not come from this site" in form_error_of(refused.text)
        assert (await c.get("/api/v1/user-webhooks")).json()["data"] == []
        created = await create(c, "http://127.0.0.1:9/hook")
        hook_id, secret = hook_id_of(created.text), secret_of(created.text)
        for action in ("", "/disable", "/rotate", "/delete", "/test"):
            r = await c.post(
                f"/app/webhooks/{hook_id}{action}", data={"csrf_token": "forged", "url": "http://127.0.0.1:9/y"}
            )
            assert r.status_code == 403, action
            assert "expired or did not come from this site" in (form_error_of(r.text) + action_error_of(r.text))
        body = await stored(c, hook_id)
        assert body["url"] == "http://127.0.0.1:9/hook" and body["enabled"] is True
        async with app.state.db.session() as session:
            hook = await session.get(UserWebhook, hook_id)
            assert hook is not None and hook.previous_secret_enc is None  # not rotated
        assert secret not in (await c.get(f"/app/webhooks/{hook_id}")).text


async def test_a_full_plan_shows_no_form_and_creating_more_is_refused(db_url: str) -> None:
    async with signed_in(db_url) as (_, c):
        for n in range(5):
            assert (await create(c, f"http://127.0.0.1:9/{n}")).status_code == 201
        html = (await c.get("/app/webhooks")).text
        assert "allows 5 endpoints and all are in use" in text_of(html) and 'action="/app/webhooks"' not in html
        r = await c.post("/app/webhooks", data={"csrf_token": csrf_of(html), "url": "http://127.0.0.1:9/6"})
        assert r.status_code == 403 and "Your team plan allows 5 webhook endpoints; you have 5" in form_error_of(r.text)


async def test_changes_are_limited_to_ten_a_minute_like_the_api(db_url: str) -> None:
    async with signed_in(db_url, KAMIYO_RATE_LIMITS="on") as (_, c):
        hook_id = hook_id_of((await create(c, "http://127.0.0.1:9/hook")).text)
        for _ in range(9):
            assert (await act(c, hook_id, "disable")).status_code == 303
        r = await act(c, hook_id, "enable")
        assert r.status_code == 429 and "At most 10 webhook changes a minute" in action_error_of(r.text)
        assert (await stored(c, hook_id))["enabled"] is False


async def test_a_failed_delivery_is_replayed_with_the_same_webhook_id(db_url: str) -> None:
    failing = True
    env = {"KAMIYO_WEBHOOK_RETRY_SCHEDULE": "0.2", "KAMIYO_DELIVERY_POLL": 0.5, "KAMIYO_RUN_WORKERS": True}

    def respond(_request: Any, _n: int) -> tuple[int, dict[str, str], float]:
        return (503 if failing else 200), {}, 0.0

    async with Receiver(respond) as rx, signed_in(db_url, **env) as (app, c):
        hook_id = hook_id_of((await create(c, rx.url + "/replay")).text)
        [exploit_id] = await ingest(app.state.db, report())
        assert len(await rx.wait_for(2)) == 2  # the first attempt and one retry
        assert await wait_until(lambda: _status_shown(c, hook_id, "Failed"))
        page = (await c.get(f"/app/webhooks/{hook_id}")).text
        assert f'href="/app/exploits/{exploit_id}">exploit {exploit_id}</a>' in page
        delivery_id = int(re.search(r'action="/app/webhooks/\d+/deliveries/(\d+)/replay"', page).group(1))  # type: ignore[union-attr]
        assert "<code>HTTP 503</code>" in page and "Failed" in page

        failing = False
        r = await c.post(f"/app/webhooks/{hook_id}/deliveries/{delivery_id}/replay", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303 and r.headers["location"].endswith(f"?replayed={delivery_id}")
        assert f"Delivery {delivery_id} will be sent again now" in (await c.get(r.headers["location"])).text
        got = await rx.wait_for(3)
        assert len(got) == 3 and len({g.headers["webhook-id"] for g in got}) == 1
        assert await wait_until(lambda: _status_shown(c, hook_id, "Succeeded"))

        await act(c, hook_id, "test")
        test_id = int(re.findall(r'<tr id="delivery-(\d+)"', (await c.get(f"/app/webhooks/{hook_id}")).text)[0])
        refused = await act(c, hook_id, f"deliveries/{test_id}/replay")
        assert refused.status_code == 422 and "test deliveries cannot be replayed" in action_error_of(refused.text)


async def _status_shown(c: httpx.AsyncClient, hook_id: int, status: str) -> bool:
    page = (await c.get(f"/app/webhooks/{hook_id}")).text
    first = re.search(r'<tr id="delivery-\d+".*?</tr>', page, re.S)
    return bool(first) and f">{status}</span>" in first.group(0)  # type: ignore[union-attr]
