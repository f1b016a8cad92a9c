"""A local stand-in for Stripe's API on 127.0.0.1, answering the fixtures' Stripe-shaped JSON, and a signer
that signs webhook payloads exactly as Stripe does."""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from tests.support.services import http_server

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def _nested(form: dict[str, str], prefix: str) -> dict[str, str]:
    """`metadata[user_id]=7` form fields → {"user_id": "7"}."""
    return {k[len(prefix) + 1 : -1]: v for k, v in form.items() if k.startswith(prefix + "[") and k.count("[") == 1}


@dataclass
class Call:
    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeStripe:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    fail_with: int | None = None  # answer every call with this status (e.g. 500) when set
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        n = next(self._ids)
        if path == "/v1/customers":
            body = fixture("customer.json")
            body.update(id=f"cus_test{n}", email=form.get("email"), metadata=_nested(form, "metadata"))
            return 200, body
        if path == "/v1/checkout/sessions":
            body = fixture("checkout_session.json")
            sid = f"cs_test_{n}"
            body.update(
                id=sid,
                customer=form.get("customer"),
                client_reference_id=form.get("client_reference_id"),
                metadata=_nested(form, "metadata"),
                mode=form.get("mode"),
                success_url=form.get("success_url"),
                cancel_url=form.get("cancel_url"),
                url=f"https://checkout.stripe.com/c/pay/{sid}",
            )
            return 200, body
        if path == "/v1/billing_portal/sessions":
            body = fixture("billing_portal_session.json")
            body.update(
                id=f"bps_test{n}",
                customer=form.get("customer"),
                return_url=form.get("return_url"),
                url=f"https://billing.stripe.com/p/session/test_{n}",
            )
            return 200, body
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL (POST: {path})"}}


@contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    """A threaded HTTP server on a free loopback port, stopped on exit."""
    state = FakeStripe()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
            state.calls.append(Call("POST", self.path, form, {k.lower(): v for k, v in self.headers.items()}))
            status, body = (
                (state.fail_with, {"error": {"type": "api_error", "message": "boom"}})
                if state.fail_with
                else state.answer(self.path, form)
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_test")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(Handler) as url:
        state.url = url
        yield state


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """`Stripe-Signature` as Stripe computes it: v1 = hex HMAC-SHA256 of "{t}.{payload}" keyed with the secret."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


_event_ids = itertools.count(1)


def event(kind: str, obj: dict[str, Any], created: int, event_id: str | None = None) -> bytes:
    """A Stripe event envelope around `obj`, as delivered to webhook endpoints."""
    return json.dumps(
        {
            "id": event_id or f"evt_test_{next(_event_ids)}_{int(time.time() * 1000)}",
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": created,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
    ).encode()


def subscription(
    sub_id: str,
    customer: str,
    price: str,
    status: str = "active",
    *,
    period_end: int | None = None,
    cancel_at_period_end: bool = False,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    obj = copy.deepcopy(fixture("subscription.json"))
    obj.update(id=sub_id, customer=customer, status=status, cancel_at_period_end=cancel_at_period_end)
    obj["metadata"] = metadata or {}
    item = obj["items"]["data"][0]
    item["price"]["id"] = price
    item["subscription"] = sub_id
    item["current_period_end"] = period_end or int(time.time()) + 30 * 86400
    return obj


def completed_checkout(user_id: int, customer: str, sub_id: str, tier: str) -> dict[str, Any]:
    obj = fixture("checkout_session.json")
    obj.update(
        status="complete",
        payment_status="paid",
        customer=customer,
        subscription=sub_id,
        client_reference_id=str(user_id),
        metadata={"user_id": str(user_id), "tier": tier},
    )
    return obj


def invoice(sub_id: str, customer: str) -> dict[str, Any]:
    obj = fixture("invoice.json")
    obj["customer"] = customer
    obj["parent"]["subscription_details"]["subscription"] = sub_id
    return obj
