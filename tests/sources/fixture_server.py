"""A real HTTP server on 127.0.0.1 serving the recorded source responses of tests/fixtures/sources/.

`/<source>/<path>` serves `tests/fixtures/sources/<source>/<path>`; with a query string it first
tries the file `<path>@<query>` (so `/slowmist/?c=&page=2` is `slowmist/index.html@c=&page=2`);
a path ending in `/` means `index.html`. Responses carry an ETag and Last-Modified and answer
conditional requests with 304, as the real sites do.

Per source, `server.modes[name]` makes it misbehave: "empty" (200, no body), "500", "slow" (answers
after `slow_seconds`), "malformed" (the first bytes of the real body, then garbage), "304" (always
Not Modified), "missing" (404), "xml_bomb" (200, a billion-laughs RSS document). Every request is
logged in `server.requests` as (method, path, headers).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.support.services import http_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
MODES = ("empty", "500", "slow", "malformed", "304")
LAST_MODIFIED = formatdate(1_764_000_000, usegmt=True)
_LAUGHS = [b'<!ENTITY lol0 "lol">'] + [
    b'<!ENTITY lol%d "%s">' % (level, b"&lol%d;" % (level - 1) * 10) for level in range(1, 10)
]
XML_BOMB = (  # 10^9 "lol"s once expanded, inside an item that would otherwise be read as an incident
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n' + b"\n".join(_LAUGHS) + b"\n]>\n"
    b'<rss version="2.0"><channel><title>t</title><item><title>&lol9; Protocol exploited for $2.1M</title>'
    b"<link>https://example.org/lol</link><pubDate>Sun, 13 Aug 2023 14:05:00 +0000</pubDate></item></channel></rss>"
)


@dataclass
class FixtureServer:
    base_url: str
    modes: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    slow_seconds: float = 1.5

    def url(self, name: str, endpoint: str | None = None) -> str:
        """The override URL of a source: its fixture folder plus the fixture's endpoint."""
        endpoint = fixture_config(name).get("endpoint", "") if endpoint is None else endpoint
        return f"{self.base_url}/{name}/{endpoint}"

    def source_urls(self, *names: str) -> dict[str, str]:
        return {name: self.url(name) for name in names}

    def hits(self, name: str) -> int:
        return sum(1 for _, path, _ in self.requests if path.startswith(f"/{name}/"))


def fixture_config(name: str) -> dict[str, Any]:
    """`fixture.json` of a source's fixture folder: endpoint, min_reports, conditional."""
    path = FIXTURES / name / "fixture.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _resolve(name: str, rest: str, query: str) -> Path | None:
    folder = (FIXTURES / name).resolve()
    rest = rest or "index.html"
    if rest.endswith("/"):
        rest += "index.html"
    for candidate in ([f"{rest}@{query}"] if query else []) + [rest]:
        path = (folder / candidate).resolve()
        if path.is_file() and folder in path.parents:
            return path
    return None


def _handler(server: FixtureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            server.requests.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
            name, _, rest = unquote(parts.path).lstrip("/").partition("/")
            mode = server.modes.get(name, "ok")
            if mode == "slow":
                time.sleep(server.slow_seconds)
            if mode in ("500", "missing"):
                return self._send(500 if mode == "500" else 404, b'{"error": "fixture failure mode"}')
            if mode == "304":
                return self._send(304, b"")
            if mode == "xml_bomb":
                return self._send(200, XML_BOMB)
            path = _resolve(name, rest, unquote(parts.query))
            if path is None:
                return self._send(404, b"not found")
            body = path.read_bytes()
            if mode == "empty":
                return self._send(200, b"")
            if mode == "malformed":
                return self._send(200, body[: min(len(body) // 3, 400)] + b'\x00<<<"{[ not what you expect')
            etag = '"' + hashlib.sha1(body).hexdigest() + '"'
            if self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", etag=etag)
            return self._send(200, body, etag=etag)

        def _send(self, status: int, body: bytes, etag: str | None = None) -> None:
            self.send_response(status)
            if etag:
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", LAST_MODIFIED)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

    return Handler


@contextmanager
def fixture_server() -> Iterator[FixtureServer]:
    """Start the server on a free loopback port; stop it (without waiting for slow answers) after."""
    state = FixtureServer(base_url="")
    with http_server(_handler(state)) as url:
        state.base_url = url
        yield state
