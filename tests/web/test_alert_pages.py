"""`/app/alerts` through the real app on SQLite and PostgreSQL: each kind's form, limits, test sends, the log.

Discord and Slack channels point at a real aiohttp receiver on 127.0.0.1 (`KAMIYO_ALLOW_HTTP_WEBHOOKS=1`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.delivery.support import Receiver, ingest, report, wait_until
from tests.support.users import add_user
from tests.web.test_account_pages import csrf_of, error_of, form_error_of
from tests.web.test_webhook_pages import action_error_of, log_in, signed_in, text_of

SMTP = {"KAMIYO_SMTP_URL": "smtp://127.0.0.1:9"}
TELEGRAM = {"TELEGRAM_BOT_TOKEN": "123:test", "TELEGRAM_API_BASE": "http://127.0.0.1:9"}


async def add(c: httpx.AsyncClient, kind: str, **fields: Any) -> httpx.Response:
    token = csrf_of((await c.get(f"/app/alerts?kind={kind}")).text)
    return await c.post(f"/app/alerts/{kind}", data={"csrf_token": token, "enabled": "1", **fields})


def channel_path(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, form_error_of(response.text), response.text[-1500:])
    location = response.headers["location"]
    assert re.fullmatch(r"/app/alerts/\w+/\d+\?done=created", location), location
    return location.split("?")[0]


async def act(c: httpx.AsyncClient, path: str, action: str = "", **fields: Any) -> httpx.Response:
    token = csrf_of((await c.get(path)).text)
    return await c.post(path + (f"/{action}" if action else ""), data={"csrf_token": token, **fields})


async def listed(c: httpx.AsyncClient, kind: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (await c.get(f"/api/v1/{kind}/channels")).json()["data"]
    return data


async def test_free_user_adds_a_discord_channel_and_then_reaches_the_plan_limit(db_url: str) -> None:
    async with signed_in(db_url, "free") as (_, c):
        page = text_of((await c.get("/app/alerts")).text)
        assert "Your Free plan allows 1 channel, all kinds together." in page
        url = "http://127.0.0.1:9/api/webhooks/123/very-secret-token"
        path = channel_path(await add(c, "discord", webhook_url=url, description="#security", chains="ethereum"))
        created = (await c.get(path + "?done=created")).text
        assert "Channel added. Send a test alert to check that it arrives." in created
        assert url not in created and "very-secret-token" not in created  # the URL is a credential: shown shortened
        [stored] = await listed(c, "discord")
        assert stored["description"] == "#security" and stored["filters"]["chains"] == ["ethereum"]
        listing = (await c.get("/app/alerts")).text
        assert "1 of 1 on the Free plan" in text_of(listing) and "all are in use" in text_of(listing)
        assert 'action="/app/alerts/' not in listing.split('id="add"')[1]
        r = await c.post("/app/alerts/slack", data={"csrf_token": csrf_of(listing), "webhook_url": url})
        assert r.status_code == 403 and "Your free plan allows 1 alert channels" in form_error_of(r.text)


async def test_each_kind_asks_for_its_own_destination_and_checks_it(db_url: str) -> None:
    cases = [
        ("discord", "webhook_url", "", "Enter the webhook URL"),
        ("discord", "webhook_url", "https://example.com/api/webhooks/1/x", "Must be an https:// URL on"),
        (
            "slack",
            "webhook_url",
            "https://hooks.slack.com.evil.example/x",
            "Must be an https:// URL on hooks.slack.com",
        ),
        ("slack", "webhook_url", "http://10.0.0.8/hook", "Only https:// URLs are allowed"),
        ("telegram", "chat_id", "hello there", "A numeric chat id (e.g. -1001234567890) or an @channel name"),
        ("email", "address", "not-an-address", "Not an e-mail address"),
    ]
    async with signed_in(db_url, "pro", **SMTP, **TELEGRAM) as (_, c):
        for kind, field, value, message in cases:
            html = (await c.get(f"/app/alerts?kind={kind}")).text
            assert f'<label for="f-{field}">' in html, kind
            r = await add(c, kind, **{field: value, "description": "kept"})
            assert r.status_code == 422, (kind, value)
            assert error_of(r.text, field).startswith(message), (kind, error_of(r.text, field))
            tab = "E-mail" if kind == "email" else kind.title()
            assert 'value="kept"' in r.text and f'aria-current="page">{tab}</a>' in r.text
        path = channel_path(await add(c, "telegram", chat_id="@kamiyo_alerts"))
        assert "@kamiyo_alerts" in (await c.get(path)).text
        path = channel_path(await add(c, "email", address="Alerts@Example.com"))
        assert "alerts@example.com" in (await c.get(path)).text
        bad_filter = await add(c, "discord", webhook_url="http://127.0.0.1:9/d", categories="vibes")
        assert bad_filter.status_code == 422 and error_of(bad_filter.text, "categories") == "Unknown category 'vibes'"
        assert [len(await listed(c, k)) for k in ("discord", "telegram", "slack", "email")] == [0, 1, 0, 1]


async def test_kinds_the_server_cannot_send_say_so_instead_of_showing_a_form(db_url: str) -> None:
    async with signed_in(db_url, "pro") as (_, c):
        for kind, setting in (("telegram", "TELEGRAM_BOT_TOKEN"), ("email", "KAMIYO_SMTP_URL")):
            html = (await c.get(f"/app/alerts?kind={kind}")).text
            assert "alerts are not configured on this server" in html and setting in html
            assert f'action="/app/alerts/{kind}"' not in html
        r = await add(c, "telegram", chat_id="@kamiyo_alerts")
        assert r.status_code == 503 and form_error_of(r.text) == "Telegram alerts are not configured on this server"
        assert 'action="/app/alerts/discord"' in (await c.get("/app/alerts")).text  # Discord is the default kind


async def test_test_alert_posts_a_discord_embed_and_appears_in_the_log(db_url: str) -> None:
    async with Receiver() as rx, signed_in(db_url, "free") as (_, c):
        path = channel_path(await add(c, "discord", webhook_url=rx.url + "/discord"))
        r = await act(c, path, "test")
        assert r.status_code == 303 and re.search(rf"{path}\?test=\d+$", r.headers["location"])
        [got] = rx.requests
        message = json.loads(got.body)
        assert got.path == "/discord?wait=true" and message["embeds"][0]["title"].startswith("Kamiyo test alert: ")
        page = (await c.get(r.headers["location"])).text
        assert re.search(r"Test alert sent: Discord answered HTTP 200 in \d+ ms", text_of(page))
        row = text_of(re.search(r'<tr id="delivery-\d+" class="is-highlight">.*?</tr>', page, re.S).group(0))  # type: ignore[union-attr]
        assert "Test" in row and "Succeeded" in row and "200" in row


async def test_edit_keeps_the_destination_unless_a_new_one_is_typed(db_url: str) -> None:
    async with signed_in(db_url, "pro") as (_, c):
        path = channel_path(await add(c, "slack", webhook_url="http://127.0.0.1:9/services/one"))
        r = await act(c, path, webhook_url="", description="ops", min_amount_usd="250000")
        assert r.status_code == 303 and r.headers["location"] == f"{path}?done=saved"
        [stored] = await listed(c, "slack")
        assert stored["target"].startswith("127.0.0.1:9/services/one") and stored["description"] == "ops"
        assert stored["filters"]["min_amount_usd"] == 250000.0
        r = await act(c, path, webhook_url="http://127.0.0.1:9/services/two", description="ops")
        assert r.status_code == 303 and (await listed(c, "slack"))[0]["target"].startswith("127.0.0.1:9/services/two")
        bad = await act(c, path, webhook_url="https://example.com/x", description="typed")
        assert bad.status_code == 422 and error_of(bad.text, "webhook_url").startswith("Must be an https:// URL on")
        assert 'value="typed"' in bad.text and (await listed(c, "slack"))[0]["description"] == "ops"


async def test_disable_enable_and_delete_a_channel(db_url: str) -> None:
    async with signed_in(db_url, "pro") as (_, c):
        path = channel_path(await add(c, "discord", webhook_url="http://127.0.0.1:9/d"))
        assert (await act(c, path, "disable")).headers["location"] == f"{path}?done=disabled"
        assert (await listed(c, "discord"))[0]["enabled"] is False
        assert "Disabled by you" in text_of((await c.get(path)).text)
        assert (await act(c, path, "enable")).status_code == 303 and (await listed(c, "discord"))[0]["enabled"] is True
        r = await act(c, path, "delete")
        assert r.status_code == 303 and r.headers["location"] == "/app/alerts?done=deleted"
        assert "The channel was deleted." in (await c.get(r.headers["location"])).text
        assert await listed(c, "discord") == [] and (await c.get(path)).status_code == 404


async def test_channel_changes_on_the_pages_count_against_the_limit_like_webhooks(db_url: str) -> None:
    """Enable and disable are changes like the API's PATCH: ten a minute, shared with every other change."""
    async with signed_in(db_url, "pro", KAMIYO_RATE_LIMITS="on") as (_, c):
        path = channel_path(await add(c, "discord", webhook_url="http://127.0.0.1:9/d"))
        for _ in range(9):
            assert (await act(c, path, "disable")).status_code == 303
        r = await act(c, path, "enable")
        assert r.status_code == 429 and "At most 10 webhook changes a minute" in action_error_of(r.text)
        assert (await listed(c, "discord"))[0]["enabled"] is False


async def test_another_users_channel_or_the_wrong_kind_is_a_404_page(db_url: str) -> None:
    await add_user(db_url, "other@example.com", tier="pro")
    async with signed_in(db_url, "pro") as (app, c):
        path = channel_path(await add(c, "discord", webhook_url="http://127.0.0.1:9/mine"))
        channel_id = path.rsplit("/", 1)[1]
        assert (await c.get(f"/app/alerts/slack/{channel_id}")).status_code == 404
        unknown = await c.get(f"/app/alerts/pigeon/{channel_id}")
        assert unknown.status_code == 404 and "Page not found" in unknown.text
        other = await log_in(app, "other@example.com")
        try:
            assert (await other.get(path)).status_code == 404
            token = csrf_of((await other.get("/app/alerts")).text)
            for action in ("", "/enable", "/disable", "/test", "/delete", "/deliveries/1/replay"):
                r = await other.post(path + action, data={"csrf_token": token, "description": "theirs"})
                assert r.status_code == 404, action
        finally:
            await other.aclose()
        [stored] = await listed(c, "discord")
        assert stored["enabled"] is True and stored["description"] == ""


async def test_every_channel_form_needs_the_csrf_token(db_url: str) -> None:
    async with signed_in(db_url, "pro") as (_, c):
        r = await c.post("/app/alerts/discord", data={"webhook_url": "http://127.0.0.1:9/d"})
        assert r.status_code == 403 and "expired or did not come from this site" in form_error_of(r.text)
        assert await listed(c, "discord") == []
        path = channel_path(await add(c, "discord", webhook_url="http://127.0.0.1:9/d"))
        for action in ("", "/disable", "/delete", "/test"):
            r = await c.post(path + action, data={"csrf_token": "forged", "description": "forged"})
            assert r.status_code == 403, action
            assert "expired or did not come from this site" in form_error_of(r.text) + action_error_of(r.text)
        [stored] = await listed(c, "discord")
        assert stored["enabled"] is True and stored["description"] == ""


@pytest.mark.parametrize("kind", ["discord", "slack"])
async def test_a_failed_alert_is_replayed_from_the_log(db_url: str, kind: str) -> None:
    failing = True

    def respond(_request: Any, _n: int) -> tuple[int, dict[str, str], float]:
        return (500 if failing else 200), {}, 0.0

    env = {"KAMIYO_WEBHOOK_RETRY_SCHEDULE": "0.2", "KAMIYO_DELIVERY_POLL": 0.5, "KAMIYO_RUN_WORKERS": True}
    async with Receiver(respond) as rx, signed_in(db_url, "pro", **env) as (app, c):
        path = channel_path(await add(c, kind, webhook_url=f"{rx.url}/{kind}"))
        await ingest(app.state.db, report(protocol="Replayfi"))
        assert len(await rx.wait_for(2)) == 2
        assert await wait_until(lambda: _first_row_has(c, path, ">Failed</span>"))
        page = (await c.get(path)).text
        alert_id = int(re.search(rf'action="{path}/deliveries/(\d+)/replay"', page).group(1))  # type: ignore[union-attr]
        failing = False
        r = await c.post(f"{path}/deliveries/{alert_id}/replay", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303 and r.headers["location"] == f"{path}?replayed={alert_id}"
        got = await rx.wait_for(3)
        assert len(got) == 3 and "Replayfi" in got[-1].body.decode()
        assert await wait_until(lambda: _first_row_has(c, path, ">Succeeded</span>"))


async def _first_row_has(c: httpx.AsyncClient, path: str, text: str) -> bool:
    first = re.search(r'<tr id="delivery-\d+".*?</tr>', (await c.get(path)).text, re.S)
    return bool(first) and text in first.group(0)  # type: ignore[union-attr]


async def test_a_telegram_channel_is_confirmed_by_typing_the_code_on_its_page(db_url: str) -> None:
    async with Receiver() as bot:
        env = {"TELEGRAM_BOT_TOKEN": "123:test", "TELEGRAM_API_BASE": bot.url, "KAMIYO_DELIVERY_POLL": 0.5}
        env["KAMIYO_RUN_WORKERS"] = True  # the worker sends the code to the chat
        async with signed_in(db_url, "pro", **env) as (_, c):
            path = channel_path(await add(c, "telegram", chat_id="-100555"))
            page = (await c.get(path + "?done=created")).text
            assert "We sent a code to the chat: enter it below" in text_of(page)
            assert "Waiting for confirmation" in page and f'action="{path}/confirm"' in page
            assert f'action="{path}/test"' not in page  # nothing but the confirmation until it is confirmed
            [sent] = await bot.wait_for(1)
            [code] = re.findall(r"<code>(\w+)</code>", json.loads(sent.body)["text"])
            assert await wait_until(lambda: _first_row_has(c, path, ">Succeeded</span>"))
            log = (await c.get(path)).text.split('id="log-title"')[1]
            assert "Confirmation" in text_of(log) and "/replay" not in log  # a code is not replayed
            wrong = await act(c, path, "confirm", code="ABCDEFGH")
            assert wrong.status_code == 422 and "not the code sent to this channel" in action_error_of(wrong.text)
            right = await act(c, path, "confirm", code=code)
            assert right.status_code == 303 and right.headers["location"] == f"{path}?done=confirmed"
            page = (await c.get(path)).text
            assert "Waiting for confirmation" not in page and f'action="{path}/test"' in page
            [stored] = await listed(c, "telegram")
            assert stored["confirmed"] is True
