"""A loopback API answering each request with the body chosen by a function of its path and body.

For paging cases the fixture server cannot play (a server that ignores the paging parameter and
repeats a page, a token that comes back, a cursor past the end): the test gives `answer(path,
body) -> bytes` and reads `requests` (method, path, body) afterwards. GET and POST are answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.services import http_server

Answer = Callable[[str, bytes], bytes]


@dataclass
class PagedApi:
    answer: Answer
    url: str = ""
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]


@contextmanager
def paged_api(answer: Answer, path: str = "/api") -> Iterator[PagedApi]:
    api = PagedApi(answer)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            api.requests.append((self.command, self.path, body))
            content = api.answer(self.path, body)
            self.send_response(200)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _answer

    with http_server(Handler) as base:
        api.url = base + path
        yield api
