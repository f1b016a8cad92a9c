"""A newcomer's journey in Debian's Chromium against a real server, with axe-core on every page.

Screenshots of each page at 1440 and 375 px go to test-artifacts/web/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from standardwebhooks import Webhook

from kamiyo.accounts import service as accounts
from kamiyo.db import Database
from kamiyo.delivery import plan_limits
from tests.support.services import http_server
from tests.web.conftest import ARTIFACTS, LIVE_DATABASES, WIDTHS, Watched

pytestmark = pytest.mark.timeout(240)
HOME_BUDGET_BYTES = 300 * 1024


def _largest_exploit_id(base: str) -> int:
    body = httpx.get(f"{base}/exploits?sort=-amount_usd&page_size=1", timeout=10).json()
    return int(body["data"][0]["id"])


def _pages(base: str) -> dict[str, str]:
    return {
        "home": "/",
        "explorer": "/app/exploits",
        "explorer-filtered": "/app/exploits?chain=bsc&min_amount=1000000&sort=-amount_usd",
        "explorer-invalid": "/app/exploits?min_amount=lots",
        "exploit": f"/app/exploits/{_largest_exploit_id(base)}",
        "sources": "/app/sources",
        "not-found": "/app/exploits/987654321",
    }


def _shoot_and_check(page: Any, name: str, problems: dict[str, list[str]], *, reload: bool = True) -> None:
    """Screenshot a page at both widths, check it fits a phone and has no serious axe violations."""
    for size, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        if reload and size != "desktop":
            page.reload()
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name} scrolls sideways at {width}px ({scroll_width}px wide)"
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        if found := _serious(page):
            problems[f"{name}@{size}"] = found


def _serious(page: Any) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_newcomer_journey_home_explorer_exploit(live_server: str, tab: Watched) -> None:
    page = tab.page
    page.goto(f"{live_server}/")
    assert page.title().startswith("Kamiyo")
    assert page.locator("h1").inner_text() == "Crypto exploits, tracked across public sources"
    assert page.locator(".stat-card").count() == 3
    assert page.locator("svg.chart-wide .bars rect").count() > 100  # one bar per month since 2017
    assert page.locator("#newest-title + a, #newest-title ~ a").count() == 1
    newest = page.locator("section[aria-labelledby=newest-title] tbody tr")
    assert newest.count() == 8
    assert "DeFiHackLabs" in page.locator("section[aria-labelledby=health-title]").inner_text()

    page.get_by_role("link", name="Exploits", exact=True).click()
    page.wait_for_url("**/app/exploits")
    assert page.title() == "Explore exploits · Kamiyo"
    page.get_by_label("Chain").select_option("bsc")
    page.get_by_label("Min loss").fill("1000000")
    page.get_by_label("Order").select_option("-amount_usd")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"/app/exploits\?"))
    assert page.url.endswith("/app/exploits?chain=bsc&min_amount=1000000&sort=-amount_usd")  # no empty fields
    api = httpx.get(f"{live_server}/exploits?chain=bsc&min_amount=1000000&sort=-amount_usd", timeout=10).json()
    assert page.locator("#results-title").inner_text().startswith(f"{api['total']:,} exploits")
    rows = page.locator(".results tbody tr")
    assert rows.count() == min(api["total"], 50)
    assert set(page.locator(".results tbody tr td:nth-child(3)").all_inner_texts()) == {"BNB Smart Chain"}
    assert page.locator(".results tbody th a").first.inner_text() == api["data"][0]["name"]

    rows.first.locator("th a").click()
    page.wait_for_url(f"**/app/exploits/{api['data'][0]['id']}")
    assert page.locator("h1").inner_text() == api["data"][0]["name"]
    assert page.title() == f"{api['data'][0]['name']} exploit · Kamiyo"
    assert re.search(r"(Reported by|Seen in) DeFiHackLabs", page.locator(".timeline").inner_text())
    assert page.locator("section[aria-labelledby=reports-title] tbody tr").count() == len(api["data"][0]["sources"])
    if api["data"][0]["tx_hash"]:
        assert page.locator(f"a[href$='/tx/{api['data'][0]['tx_hash']}']").count() >= 1
    tab.assert_clean()


def test_invalid_filter_is_shown_next_to_its_field(live_server: str, tab: Watched) -> None:
    page = tab.page
    page.goto(f"{live_server}/app/exploits?min_amount=lots&chain=bsc")
    field = page.get_by_label("Min loss")
    assert field.get_attribute("aria-invalid") == "true"
    assert page.locator("#err-min_amount").is_visible()
    assert page.locator("#results-title").inner_text() == "No results"
    assert page.get_by_label("Chain").input_value() == "bsc"  # the other filters are kept
    tab.assert_clean()


def test_keyboard_reaches_content_and_filters(live_server: str, tab: Watched) -> None:
    page = tab.page
    page.goto(f"{live_server}/app/exploits")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")  # first control after the skip target: a link in the intro or the search box
    assert page.evaluate("document.activeElement.tagName") in ("A", "INPUT")
    page.get_by_label("Search").focus()
    page.keyboard.type("flash")
    page.keyboard.press("Enter")
    page.wait_for_url("**/app/exploits?q=flash")
    assert "exploits match" in page.locator("#results-title").inner_text()
    tab.assert_clean()


def test_every_page_is_accessible_fits_a_phone_and_is_screenshotted(live_server: str, tab: Watched) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = tab.page
    problems: dict[str, list[str]] = {}
    for name, path in _pages(live_server).items():
        for size, (width, height) in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            response = page.goto(f"{live_server}{path}")
            assert response is not None
            assert response.status == (404 if name == "not-found" else 200), name
            assert page.title().endswith("Kamiyo") or page.title().startswith("Kamiyo"), name
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, f"{name} scrolls sideways at {width}px ({scroll_width}px wide)"
            page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
            if found := _serious(page):
                problems[f"{name}@{size}"] = found
    assert problems == {}
    tab.failed = [f for f in tab.failed if "987654321" not in f]  # the 404 page itself
    tab.console_errors = [e for e in tab.console_errors if "404" not in e]
    tab.assert_clean()


def test_home_transfers_under_300_kb_with_its_assets(live_server: str, tab: Watched) -> None:
    tab.page.goto(f"{live_server}/", wait_until="load")
    sizes = tab.page.evaluate(
        "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(e => [e.name, e.transferSize])"
    )
    names = " ".join(name for name, _ in sizes)
    assert "kamiyo.css" in names and "kamiyo.js" in names
    assert all(size > 0 for _, size in sizes), sizes  # fetched, not from a cache
    assert sum(size for _, size in sizes) <= HOME_BUDGET_BYTES, sizes
    tab.assert_clean()


def test_newcomer_signs_up_creates_a_key_and_opens_pricing(live_server: str, tab: Watched) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = tab.page
    problems: dict[str, list[str]] = {}
    page.goto(f"{live_server}/login")
    assert page.title() == "Log in · Kamiyo"
    _shoot_and_check(page, "login", problems)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("link", name="Sign up").first.click()
    page.wait_for_url("**/signup")
    _shoot_and_check(page, "signup", problems)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_label("E-mail").fill("short@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    assert page.locator("#err-password").inner_text() == "At least 10 characters"
    _shoot_and_check(page, "signup-invalid", problems, reload=False)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_label("E-mail").fill("newcomer@example.com")
    page.get_by_label("Password").fill("a long enough passphrase")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/app/keys")
    assert "newcomer@example.com" in page.locator(".site-header").inner_text()

    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text()
    assert key.startswith("kmy_")
    assert page.locator("button[data-copy]").first.is_visible()  # the copy button appears with JavaScript
    me = httpx.get(f"{live_server}/api/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert me.status_code == 200
    _shoot_and_check(page, "keys-new", problems, reload=False)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server}/app/keys")
    assert key not in page.content()
    _shoot_and_check(page, "keys", problems)

    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("link", name="Pricing").click()
    page.wait_for_url("**/pricing")
    assert page.locator("#plan-free").inner_text().startswith("Free")
    assert "Your plan" in page.locator("#plan-free").inner_text()
    assert "Billing is not configured" in page.locator("main").inner_text()
    _shoot_and_check(page, "pricing", problems)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("link", name="Billing").click()
    page.wait_for_url("**/app/billing")
    _shoot_and_check(page, "billing", problems)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("link", name="Webhooks").click()
    page.wait_for_url("**/app/webhooks")
    upsell = page.locator("section.upsell")
    assert upsell.locator("h2").inner_text() == "Webhooks are part of the Team or Enterprise plans"
    assert upsell.get_by_role("link", name="Compare plans").get_attribute("href") == "/pricing"
    assert page.locator("form[action='/app/webhooks']").count() == 0
    _shoot_and_check(page, "webhooks-free", problems)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{live_server}/")
    assert page.get_by_role("link", name="Log in").is_visible()
    assert problems == {}
    tab.console_errors = [e for e in tab.console_errors if "422" not in e]  # the invalid signup answer
    tab.failed = [f for f in tab.failed if not f.startswith("422 ")]
    tab.assert_clean()


# ---------------------------------------------------------------- a team user's webhook and alert


class Received:
    """What a tiny loopback receiver got: path, headers and the raw body of each POST."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.url = ""

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.requests


@pytest.fixture
def receiver() -> Iterator[Received]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            received.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    with http_server(Handler) as url:
        received.url = url
        yield received


def _add_user(database_url: str, email: str, password: str, tier: str) -> None:
    """Through the accounts service, as `kamiyo users create --tier` does (in a thread: Playwright owns this one)."""

    async def create() -> None:
        db = Database(database_url)
        try:
            async with db.session() as session:
                user = await accounts.create_user(session, email, password)
                await plan_limits.set_tier(session, user, tier)
        finally:
            await db.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create()).result(timeout=30)


def test_team_user_creates_a_webhook_tests_it_and_rotates_the_secret(
    live_server: str, tab: Watched, receiver: Received
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _add_user(LIVE_DATABASES[live_server], "team@example.com", "a long enough passphrase", "team")
    page = tab.page
    problems: dict[str, list[str]] = {}
    page.goto(f"{live_server}/app/webhooks")
    page.wait_for_url("**/login?next=/app/webhooks")
    page.get_by_label("E-mail").fill("team@example.com")
    page.get_by_label("Password").fill("a long enough passphrase")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/app/webhooks")
    assert page.title() == "Webhooks · Kamiyo"
    _shoot_and_check(page, "webhooks", problems)

    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_label("Endpoint URL").fill("ftp://files.example/hook")
    page.get_by_role("button", name="Create endpoint").click()
    assert page.locator("#err-url").inner_text() == "Only https:// URLs are allowed"
    assert page.get_by_label("Endpoint URL").get_attribute("aria-invalid") == "true"
    _shoot_and_check(page, "webhooks-invalid", problems, reload=False)

    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_label("Endpoint URL").fill(f"{receiver.url}/kamiyo")
    page.get_by_label("Description").fill("SOC pager")
    page.get_by_label("Min loss").fill("1000000")
    chains = page.get_by_role("group", name="Chains")
    chains.get_by_label("Ethereum", exact=True).check()
    chains.get_by_label("BNB Smart Chain").check()
    page.get_by_role("button", name="Create endpoint").click()
    secret = page.locator("#webhook-secret").inner_text()
    assert secret.startswith("whsec_")
    assert "it will not be shown again" in page.locator("[aria-labelledby=secret-title]").inner_text()
    assert "at least $1M · on BNB Smart Chain, Ethereum" in page.locator("[aria-labelledby=about-title]").inner_text()
    _shoot_and_check(page, "webhook-created", problems, reload=False)

    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("button", name="Send test event").click()
    page.wait_for_url(re.compile(r"/app/webhooks/\d+\?test=\d+$"))
    assert re.search(r"HTTP 200 in \d+ ms", page.locator("#test-outcome").inner_text())
    [(path, headers, body)] = receiver.wait_for(1)
    assert path == "/kamiyo" and headers["user-agent"].startswith("Kamiyo-Webhooks/")
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "webhook.test"
    row = page.locator("[aria-labelledby=log-title] tbody tr").first
    cells = row.locator("td").all_inner_texts()
    assert "Succeeded" in cells[0] and cells[1:4] == ["1", "200", cells[3]] and re.fullmatch(r"\d+ ms", cells[3])
    assert "Test" in row.locator("th").inner_text()
    assert secret not in page.content()
    _shoot_and_check(page, "webhook-log", problems)

    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("button", name="Rotate secret").click()
    new_secret = page.locator("#webhook-secret").inner_text()
    assert new_secret.startswith("whsec_") and new_secret != secret
    assert secret not in page.content() and page.locator("#webhook-secret").count() == 1
    assert "previous secret keeps signing" in page.locator("[aria-labelledby=secret-title]").inner_text()
    _shoot_and_check(page, "webhook-rotated", problems, reload=False)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("link", name="Webhooks", exact=True).first.click()
    page.wait_for_url("**/app/webhooks")
    assert new_secret not in page.content() and secret not in page.content()
    assert "1 of 5 on the Team plan" in page.locator("[aria-labelledby=list-title]").inner_text()
    _shoot_and_check(page, "webhooks-list", problems)

    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("link", name="Alerts").click()
    page.wait_for_url("**/app/alerts")
    page.get_by_label("Discord webhook URL").fill(f"{receiver.url}/discord")
    page.get_by_role("button", name="Add Discord channel").click()
    page.wait_for_url(re.compile(r"/app/alerts/discord/\d+\?done=created$"))
    page.get_by_role("button", name="Send test alert").click()
    page.wait_for_url(re.compile(r"\?test=\d+$"))
    assert "Test alert sent: Discord answered HTTP 200" in page.locator("#test-outcome").inner_text()
    discord = receiver.wait_for(2)[1]
    assert discord[0] == "/discord?wait=true" and json.loads(discord[2])["embeds"][0]["title"].startswith("Kamiyo test")
    _shoot_and_check(page, "alert-channel", problems)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("link", name="Alerts", exact=True).first.click()
    assert "1 of 20 on the Team plan" in page.locator("[aria-labelledby=list-title]").inner_text()
    _shoot_and_check(page, "alerts", problems)
    assert problems == {}
    tab.console_errors = [e for e in tab.console_errors if "422" not in e]  # the invalid URL's answer
    tab.failed = [f for f in tab.failed if not f.startswith("422 ")]
    tab.assert_clean()


def _add_reports(database_url: str, reports: list[Any]) -> None:
    """Stored as ingest stores them (in a thread: Playwright owns this one)."""
    from kamiyo.ingest.store import store_reports

    async def store() -> None:
        db = Database(database_url)
        try:
            async with db.session() as session:
                await store_reports(session, reports)
                await session.commit()
        finally:
            await db.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, store()).result(timeout=30)


def test_a_reader_finds_a_bridge_hack_by_target_and_another_chain(live_server: str, tab: Watched) -> None:
    from tests.exploits.test_record_facts import LINK, _wormhole

    _add_reports(LIVE_DATABASES[live_server], _wormhole())
    # The server may answer from its cache for up to a second after another process's commit: wait for the write.
    query = f"{live_server}/exploits?chain=ethereum&target_type=bridge"
    deadline = time.monotonic() + 10
    while httpx.get(query, timeout=10).json()["total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    page = tab.page
    page.goto(f"{live_server}/app/exploits")
    page.get_by_label("Target").select_option("bridge")
    page.get_by_label("Chain").select_option("ethereum")  # Wormhole's primary chain is Solana
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"/app/exploits\?"))
    assert page.url.endswith("/app/exploits?chain=ethereum&target_type=bridge")
    api = httpx.get(query, timeout=10).json()
    assert api["total"] >= 1 and page.locator(".results tbody tr").count() == min(api["total"], 50)
    record = next(e for e in api["data"] if "Portal" in (e["name"], *e["aliases"]))
    page.locator(f".results tbody th a[href='/app/exploits/{record['id']}']").click()
    page.wait_for_url(f"**/app/exploits/{record['id']}")
    assert page.locator("h1").inner_text() == record["name"]
    assert "Also known as" in page.locator(".aliases").inner_text()
    assert "Solana (primary)" in page.locator(".fact-chains dd").inner_text()
    assert page.locator(".fact-target dd").inner_text() == "Bridge"
    assert page.locator(".fact-technique dd").inner_text() == "Signature verification bypass"
    assert page.locator(".fact-txs a[href^='https://solscan.io/tx/']").count() == 1
    assert page.locator(f"a[href='{LINK}']").count() == 1
    assert "Report time not known (backfilled history)" in page.locator(".timeline").inner_text()  # not "now"
    problems: dict[str, list[str]] = {}
    _shoot_and_check(page, "exploit-facts", problems)
    assert problems == {}
    tab.assert_clean()
