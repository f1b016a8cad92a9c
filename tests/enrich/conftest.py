"""Fixtures of the enrichment tests."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.services import http_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "enrich"
# Recorded coins.llama.fi answers, by the asked time (noon UTC of a day); see fixtures/enrich/prices/README.md.
ANSWERS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "prices" / "answers.json").read_text())


@pytest.fixture
def feed_server() -> Iterator[tuple[str, list[str]]]:
    """FIXTURES served over HTTP with Last-Modified / If-Modified-Since (Python's file server)."""
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("If-Modified-Since") or "")
            super().do_GET()

    with http_server(functools.partial(Handler, directory=str(FIXTURES))) as url:
        yield url, seen


@dataclass
class PriceApi:
    """What the loopback API was asked, and how it answers: "ok" (recorded answers), "500" or "garbage"."""

    mode: str = "ok"
    asked: list[tuple[int, list[str], str]] = field(default_factory=list)


@pytest.fixture
def price_api() -> Iterator[tuple[str, PriceApi]]:
    api = PriceApi()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts[:2] != ["prices", "historical"] or len(parts) != 4:
                self._send(404, b"{}")
                return
            stamp, coins = int(parts[2]), parts[3].split(",")
            api.asked.append((stamp, coins, parse_qs(url.query).get("searchWidth", [""])[0]))
            if api.mode == "500":
                self._send(500, b'{"message": "internal error"}')
                return
            if api.mode == "garbage":
                self._send(200, b"<html>rate limited</html>")
                return
            recorded = ANSWERS.get(str(stamp), {"coins": {}})["coins"]  # the API leaves out coins it has no price for
            self._send(200, json.dumps({"coins": {c: recorded[c] for c in coins if c in recorded}}).encode())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_server(Handler) as base:
        yield base, api
