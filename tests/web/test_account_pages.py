"""Account pages through the real app on SQLite and PostgreSQL: forms, CSRF, keys, billing, pricing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from html import unescape

import httpx
import pytest

from kamiyo import tiers
from kamiyo.tiers import TIERS
from tests.billing.helpers import billing_settings
from tests.billing.stripe_fake import FakeStripe, fake_stripe
from tests.support.app import running
from tests.support.users import PASSWORD, add_user, settings_for


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def error_of(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="err-{field}">(.*?)</p>', html)
    return unescape(match.group(1)) if match else ""


def form_error_of(html: str) -> str:
    match = re.search(r'<p class="form-error" role="alert">(.*?)</p>', html)
    return unescape(match.group(1)) if match else ""


async def post_form(c: httpx.AsyncClient, page: str, action: str, **fields: str) -> httpx.Response:
    """Submit a form as a browser does: load its page for the token, then post it."""
    token = csrf_of((await c.get(page)).text)
    return await c.post(action, data={"csrf_token": token, **fields})


@pytest.fixture
async def visitor(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings_for(db_url)) as (_, c):
        yield c


async def test_signup_creates_a_session_and_shows_the_account_in_the_nav(visitor: httpx.AsyncClient) -> None:
    r = await post_form(visitor, "/signup", "/signup", email="New@Example.com", password=PASSWORD, next="/pricing")
    assert r.status_code == 303 and r.headers["location"] == "/pricing"
    html = (await visitor.get("/")).text
    assert "new@example.com" in html and 'action="/logout"' in html and ">API keys</a>" in html
    assert (await visitor.get("/api/v1/me")).json()["user"]["email"] == "new@example.com"


@pytest.mark.parametrize(
    ("email", "password", "field", "message"),
    [
        ("", PASSWORD, "email", "Enter your e-mail address"),
        ("not-an-address", PASSWORD, "email", "Not a valid e-mail address"),
        ("short@example.com", "short", "password", "At least 10 characters"),
    ],
)
async def test_signup_errors_are_shown_next_to_their_field(
    visitor: httpx.AsyncClient, email: str, password: str, field: str, message: str
) -> None:
    r = await post_form(visitor, "/signup", "/signup", email=email, password=password)
    assert r.status_code == 422
    assert error_of(r.text, field) == message
    assert f'aria-describedby="err-{field}"' in r.text
    assert f'value="{email}"' in r.text  # what was typed is kept (never the password)
    assert PASSWORD not in r.text


async def test_signup_with_a_taken_email_points_to_login(db_url: str, visitor: httpx.AsyncClient) -> None:
    await add_user(db_url, "taken@example.com")
    r = await post_form(visitor, "/signup", "/signup", email="taken@example.com", password=PASSWORD)
    assert r.status_code == 409 and "already exists" in error_of(r.text, "email")


async def test_login_refuses_wrong_password_and_never_redirects_off_site(
    db_url: str, visitor: httpx.AsyncClient
) -> None:
    await add_user(db_url, "me@example.com")
    wrong = await post_form(visitor, "/login", "/login", email="me@example.com", password="wrong password!")
    assert wrong.status_code == 401 and form_error_of(wrong.text) == "Wrong e-mail or password."
    r = await post_form(visitor, "/login", "/login", email="me@example.com", password=PASSWORD, next="//evil.example")
    assert r.status_code == 303 and r.headers["location"] == "/app/keys"
    assert (await visitor.get("/login")).headers.get("location") == "/app/keys"  # already logged in


async def test_account_pages_send_visitors_to_login(visitor: httpx.AsyncClient) -> None:
    for path in ("/app/keys", "/app/billing"):
        r = await visitor.get(path)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"
    assert 'name="next" value="/app/billing"' in (await visitor.get("/login?next=/app/billing")).text


async def test_key_is_shown_once_works_and_stops_working_when_revoked(visitor: httpx.AsyncClient) -> None:
    await post_form(visitor, "/signup", "/signup", email="keys@example.com", password=PASSWORD)
    created = await post_form(visitor, "/app/keys", "/app/keys", name="monitoring")
    assert created.status_code == 201
    key = re.search(r'<code id="new-key">(kmy_[^<]+)</code>', created.text)
    assert key and "monitoring" in created.text
    me = await visitor.get("/api/v1/me", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert me.status_code == 200 and me.json()["user"]["email"] == "keys@example.com"
    listing = (await visitor.get("/app/keys")).text
    assert key.group(1) not in listing and f"<code>{key.group(1)[:12]}" in listing  # prefix only
    key_id = re.search(r'action="/app/keys/(\d+)/revoke"', listing)
    assert key_id
    revoked = await post_form(visitor, "/app/keys", f"/app/keys/{key_id.group(1)}/revoke")
    assert revoked.status_code == 303 and revoked.headers["location"] == "/app/keys?revoked=1"
    assert "The key was revoked." in (await visitor.get("/app/keys?revoked=1")).text
    after = await visitor.get("/api/v1/me", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert after.status_code == 401


async def test_every_mutation_needs_the_csrf_token(visitor: httpx.AsyncClient) -> None:
    await post_form(visitor, "/signup", "/signup", email="csrf@example.com", password=PASSWORD)
    no_token = await visitor.post("/app/keys", data={"name": "sneaky"})
    assert no_token.status_code == 403 and "expired or did not come from this site" in form_error_of(no_token.text)
    assert "sneaky" not in (await visitor.get("/app/keys")).text.split("Active keys")[1]
    bad = await visitor.post("/logout", data={"csrf_token": "forged"})
    assert bad.status_code == 403 and bad.headers["content-type"].startswith("text/html")
    assert (await visitor.get("/app/keys")).status_code == 200  # still logged in
    forged_login = await visitor.post("/login", data={"email": "csrf@example.com", "password": PASSWORD})
    assert forged_login.status_code == 403


async def test_a_pre_session_token_is_refused_once_a_session_exists(db_url: str, visitor: httpx.AsyncClient) -> None:
    """Cookie injection: another site plants its own pre-session cookie in a logged-in browser, then posts the
    matching token (which it got by visiting us itself). Only the session-bound token may pass."""
    await post_form(visitor, "/signup", "/signup", email="victim@example.com", password=PASSWORD)
    async with running(settings_for(db_url)) as (_, attacker):
        planted_token = csrf_of((await attacker.get("/login")).text)
        planted_cookie = attacker.cookies["kamiyo_csrf"]
    visitor.cookies.set("kamiyo_csrf", planted_cookie)
    forged = await visitor.post("/app/keys", data={"csrf_token": planted_token, "name": "planted"})
    assert forged.status_code == 403 and "expired or did not come from this site" in form_error_of(forged.text)
    header = await visitor.post("/app/keys", data={"name": "planted"}, headers={"X-CSRF-Token": planted_token})
    assert header.status_code == 403
    assert "planted" not in (await visitor.get("/app/keys")).text.split("Active keys")[1]
    odd = await visitor.post("/app/keys", data={"name": "x"}, headers={"X-CSRF-Token": "caf\u00e9".encode("latin-1")})
    assert odd.status_code == 403  # a non-ASCII token is a wrong token, not a 500
    honest = await post_form(visitor, "/app/keys", "/app/keys", name="mine")  # the session's own token still works
    assert honest.status_code == 201 and "mine" in honest.text


async def test_logout_ends_the_session(visitor: httpx.AsyncClient) -> None:
    await post_form(visitor, "/signup", "/signup", email="bye@example.com", password=PASSWORD)
    r = await post_form(visitor, "/app/keys", "/logout")
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert (await visitor.get("/app/keys")).status_code == 303
    assert "Log in" in (await visitor.get("/")).text


async def test_pricing_is_the_tier_table_and_says_billing_is_not_configured(visitor: httpx.AsyncClient) -> None:
    html = (await visitor.get("/pricing")).text
    for tier in TIERS.values():
        assert f'id="plan-{tier.name}">{tier.title}' in html
        assert f"${tier.price_usd:,}" in html and f"{tier.requests_per_day:,} API requests a day" in html
    assert "Billing is not configured on this server" in html and "/pricing/checkout" not in html
    await post_form(visitor, "/signup", "/signup", email="plan@example.com", password=PASSWORD)
    html = (await visitor.get("/pricing")).text
    assert re.search(r'id="plan-free">Free <span class="status status-ok">Your plan', html)
    billing = (await visitor.get("/app/billing")).text
    assert "Your plan: Free" in billing and "Billing is not configured" in billing


@pytest.fixture
def stripe_api() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


async def test_upgrade_button_starts_stripe_checkout_and_billing_opens_the_portal(
    db_url: str, stripe_api: FakeStripe
) -> None:
    async with running(billing_settings(db_url, stripe_api.url)) as (_, c):
        anonymous = (await c.get("/pricing")).text
        assert 'href="/signup?next=/pricing">Sign up to upgrade' in anonymous
        await post_form(c, "/signup", "/signup", email="buyer@example.com", password=PASSWORD)
        pricing = (await c.get("/pricing")).text
        assert "Upgrade to Pro" in pricing and "Upgrade to Free" not in pricing
        r = await c.post("/pricing/checkout", data={"csrf_token": csrf_of(pricing), "tier": "pro"})
        assert r.status_code == 303 and r.headers["location"].startswith("https://checkout.stripe.com/c/pay/")
        assert stripe_api.calls[-1].form["line_items[0][price]"] == "price_pro_test_49"
        billing = (await c.get("/app/billing?checkout=success")).text
        assert "Thank you!" in billing and "Manage billing" in billing
        portal = await c.post("/app/billing/portal", data={"csrf_token": csrf_of(billing)})
        assert portal.status_code == 303 and portal.headers["location"].startswith("https://billing.stripe.com/")
        bad = await c.post("/pricing/checkout", data={"csrf_token": csrf_of(pricing), "tier": "platinum"})
        assert bad.status_code == 422 and "tier: one of" in form_error_of(bad.text)


async def test_csv_cap_is_lifted_for_plans_with_export(
    db_url: str, visitor: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiers, "ANONYMOUS_CSV_ROWS", 7)
    await add_user(db_url, "pro@example.com", tier="pro")
    await post_form(visitor, "/login", "/login", email="pro@example.com", password=PASSWORD)
    response = await visitor.get("/app/exploits.csv?chain=bsc")
    total = (await visitor.get("/exploits?chain=bsc&page_size=1")).json()["total"]
    assert len(list(csv.DictReader(io.StringIO(response.text)))) == total > 7
    assert "first 7 of" not in (await visitor.get("/app/exploits?chain=bsc")).text
