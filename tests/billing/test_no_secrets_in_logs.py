"""No password, API key, session token, CSRF token or Stripe secret created in a full flow reaches the logs."""

from __future__ import annotations

import logging
import time

import pytest

from kamiyo.logging_setup import JsonFormatter
from tests.billing.helpers import PRICES, STRIPE_SECRET, WEBHOOK_SECRET, billing_settings, deliver
from tests.billing.stripe_fake import event, fake_stripe, subscription
from tests.support.app import running
from tests.support.users import SECRET, bearer


async def test_a_full_account_and_billing_flow_logs_no_secret(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    password, wrong_password = "s3cret-passphrase-for-logs", "wrong-passphrase-for-logs"
    bogus_key = "kmy_" + "Q" * 43
    secrets: list[str] = [password, wrong_password, bogus_key, STRIPE_SECRET, WEBHOOK_SECRET, SECRET]
    caplog.set_level(logging.DEBUG)
    with fake_stripe() as stripe_api:
        async with running(billing_settings(db_url, stripe_api.url)) as (_, c):
            signup = await c.post("/api/v1/auth/signup", json={"email": "log@example.com", "password": password})
            csrf = signup.json()["csrf_token"]
            secrets += [csrf, c.cookies["kamiyo_session"], c.cookies["kamiyo_session"].split(".")[0]]
            created = await c.post("/api/v1/keys", json={"name": "k"}, headers={"X-CSRF-Token": csrf})
            key = created.json()["key"]
            secrets.append(key)
            await c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
            c.cookies.clear()
            await c.post("/api/v1/auth/login", json={"email": "log@example.com", "password": wrong_password})
            await c.post("/api/v1/auth/login", json={"email": "log@example.com", "password": password})
            c.cookies.clear()
            await c.get("/exploits?page_size=1", headers=bearer(bogus_key))
            await c.get("/api/v1/me", headers={"X-API-Key": key})
            await c.post("/api/v1/payments/checkout", json={"tier": "pro"}, headers=bearer(key))
            await c.post("/api/v1/billing/portal", headers=bearer(key))
            payload = event(
                "customer.subscription.created", subscription("sub_l", "cus_test1", PRICES["pro"]), int(time.time())
            )
            assert (await deliver(c, payload)).status_code == 200
            assert (await deliver(c, payload, secret="whsec_wrong_secret_for_logs")).status_code == 400
            stripe_api.fail_with = 401  # Stripe refusing the key: its error must not echo it into our logs
            await c.post("/api/v1/billing/portal", headers=bearer(key))
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    text = "\n".join(lines) + caplog.text
    assert any("stripe event customer.subscription.created" in line for line in lines)  # logs were captured
    assert any("Stripe call failed" in line for line in lines)
    leaked = [s for s in secrets if s in text]
    assert leaked == []
