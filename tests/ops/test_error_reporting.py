"""Error reporting: with SENTRY_DSN set, an unhandled server error reaches a Sentry envelope endpoint (a real
receiver on 127.0.0.1) as an event, and none of the request's secrets are in what is sent; off by default."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import Request

from kamiyo.accounts import service as accounts
from kamiyo.app import create_app
from kamiyo.db import Database
from kamiyo.ops.reporting import init_error_reporting
from tests.support.app import make_settings
from tests.support.services import http_server

WEBHOOK_SECRET = "whsec_c2VjcmV0LXdlYmhvb2stc2lnbmluZy1rZXk"
SECRETS = {
    "cookie": "cookie-session-value-7f3a9",
    "password": "body-password-Zq81x",
    "query": "query-token-Vv02k",
    "signature": "v1=stripe-signature-88ab",
    "url": "url-password-Hk4t",
    "webhook": WEBHOOK_SECRET,
}


class Envelopes:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self.arrived = threading.Event()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        store = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                store.paths.append(self.path)
                store.bodies.append(body)
                store.arrived.set()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def events(self) -> list[dict[str, Any]]:
        found = []
        for body in self.bodies:
            lines = body.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if header.strip() and json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found


@pytest.fixture
def receiver() -> Iterator[tuple[Envelopes, str]]:
    envelopes = Envelopes()
    with http_server(envelopes.handler()) as base:
        yield envelopes, base.replace("http://", "http://public@") + "/1"


@pytest.fixture(autouse=True)
def _no_sdk_left_behind() -> Iterator[None]:
    yield
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)


async def _user_key(url: str) -> str:
    db = Database(url)
    try:
        async with db.session() as session:
            user = await accounts.create_user(session, "ops@example.com", "a long passphrase!")
            return (await accounts.create_key(session, user.id, "ops"))[1]
    finally:
        await db.dispose()


async def test_unhandled_error_is_reported_without_secrets(db_url: str, receiver: tuple[Envelopes, str]) -> None:
    envelopes, dsn = receiver
    key = await _user_key(db_url)
    app = create_app(make_settings(db_url, SENTRY_DSN=dsn, KAMIYO_RATE_LIMITS="off"))

    async def boom(request: Request) -> None:
        body = await request.json()
        raise RuntimeError(f"delivery failed for {body['url']} signed with {request.headers['x-webhook-secret']}")

    app.add_api_route("/_test/boom", boom, methods=["POST"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(
                f"/_test/boom?token={SECRETS['query']}&api_key={key}&page=2",
                headers={
                    "Authorization": f"Bearer {key}",
                    "X-API-Key": key,
                    "Cookie": f"kamiyo_session={SECRETS['cookie']}",
                    "Stripe-Signature": f"t=1,{SECRETS['signature']}",
                    "X-Webhook-Secret": SECRETS["webhook"],
                },
                json={"password": SECRETS["password"], "url": f"https://hook:{SECRETS['url']}@example.com/in"},
            )
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal"
    assert sentry_sdk.flush(timeout=5) is None
    assert envelopes.arrived.wait(5), "no envelope reached the receiver"
    assert all(path.startswith("/api/1/envelope/") for path in envelopes.paths)
    events = envelopes.events()
    errors = [e for e in events if any(x["type"] == "RuntimeError" for x in e.get("exception", {}).get("values", []))]
    assert errors, events
    event = errors[0]
    assert "/_test/boom" in event["request"]["url"] and event["release"].startswith("kamiyo@")
    message = event["exception"]["values"][-1]["value"]
    assert "delivery failed for https://hook:" in message  # the error is there, its secrets are not
    raw = b"\n".join(envelopes.bodies).decode()
    for name, secret in {**SECRETS, "api key": key, "key body": key[4:]}.items():
        assert secret not in raw, f"the {name} was sent to the error reporter"


def test_reporting_is_off_by_default_and_a_bad_dsn_does_not_stop_start_up(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'unused.db'}"
    assert init_error_reporting(make_settings(url)) is False
    assert not sentry_sdk.get_client().is_active()
    assert init_error_reporting(make_settings(url, SENTRY_DSN="not a dsn")) is False
    assert not sentry_sdk.get_client().is_active()
    create_app(make_settings(url, SENTRY_DSN="not a dsn"))  # builds, reporting off
