"""Fixtures of the enrichment tests."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import http_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "enrich"


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
