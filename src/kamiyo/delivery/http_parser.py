"""Incremental parsing of HTTP/1.x responses for the delivery client (`delivery.http`).

Framing as RFC 9112 says for a client: no body for 1xx, 204 and 304; chunked when Transfer-Encoding
ends with chunked, else read to the close when Transfer-Encoding is present; otherwise Content-Length
(all copies equal); otherwise read to the close. Interim 1xx answers are skipped. Only the first
`keep` body bytes are kept; past DRAIN_LIMIT more the answer is cut short and the connection dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 65536  # bytes of status line and headers
MAX_LINE = 4096  # bytes of a chunk-size or trailer line
DRAIN_LIMIT = 65536  # body bytes read past the kept excerpt before giving up the connection instead
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_NO_BODY = frozenset({204, 304})


class ProtocolError(ValueError):
    """The server's answer is not valid HTTP/1.x (or ended early)."""


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated names joined with ", "
    body: bytes  # at most the `keep` bytes asked for


class Parser:
    """Incremental parser of one response; `feed` and `feed_eof` answer True once it is complete."""

    __slots__ = ("body", "buf", "headers", "keep", "remaining", "reusable", "seen", "state", "status")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.buf = b""
        self.state = "head"  # head | length | chunk_size | chunk_data | chunk_end | trailers | eof | done
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.seen = 0
        self.remaining = 0
        self.reusable = True

    def feed(self, data: bytes) -> bool:
        self.buf = self.buf + data if self.buf else data
        while self.buf and self.state != "done":
            if not getattr(self, "_" + self.state)():
                break  # needs more bytes
        if self.state == "done" and self.buf:
            self.reusable = False  # bytes after the answer: do not trust this connection again
        return self.state == "done"

    def feed_eof(self) -> bool:
        if self.state == "eof":
            self.state, self.reusable = "done", False
            return True
        if self.state != "done":
            raise ProtocolError("the server closed the connection before the response was complete")
        return True

    def _take(self, data: bytes) -> None:
        if len(self.body) < self.keep:
            self.body += data[: self.keep - len(self.body)]
        self.seen += len(data)
        if self.seen > DRAIN_LIMIT + self.keep:  # a big answer: stop reading it, close the connection
            self.state, self.reusable, self.buf = "done", False, b""

    def _head(self) -> bool:
        found = _HEAD_END.search(self.buf)
        if found is None:
            if len(self.buf) > MAX_HEAD:
                raise ProtocolError("response headers too large")
            return False
        head, self.buf = self.buf[: found.start()], self.buf[found.end() :]
        self._parse_head(head.decode("latin-1").split("\n"))
        return True

    def _parse_head(self, lines: list[str]) -> None:
        status_line = lines[0].rstrip("\r")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit() or rest[3:4] not in ("", " "):
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        headers: dict[str, str] = {}
        for raw in lines[1:]:
            name, sep, value = raw.rstrip("\r").partition(":")
            if not sep or not name or name != name.strip() or " " in name:
                raise ProtocolError(f"malformed response header line: {raw[:60]!r}")
            name, value = name.lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.status, self.headers = int(code), headers
        if 100 <= self.status < 200:
            if self.status == 101:
                raise ProtocolError("unexpected 101 Switching Protocols")
            self.headers = {}  # an interim answer: the real one follows
            return
        self._framing(version)

    def _framing(self, version: str) -> None:
        headers = self.headers
        connection = headers.get("connection")
        if version != "HTTP/1.1" or (connection and "close" in {t.strip().lower() for t in connection.split(",")}):
            self.reusable = False
        if self.status in _NO_BODY:
            self.state = "done"
        elif "transfer-encoding" in headers:
            chunked = headers["transfer-encoding"].rsplit(",", 1)[-1].strip().lower() == "chunked"
            self.state = "chunk_size" if chunked else "eof"
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            value = values.pop()
            if values or not value.isdigit():
                raise ProtocolError("invalid Content-Length")
            self.remaining = int(value)
            self.state = "length" if self.remaining else "done"
        else:
            self.state = "eof"
        if self.state == "eof":
            self.reusable = False

    def _length(self) -> bool:
        piece, self.buf = self.buf[: self.remaining], self.buf[self.remaining :]
        self.remaining -= len(piece)
        if not self.remaining:
            self.state = "done"
        self._take(piece)
        return True

    def _eof(self) -> bool:
        piece, self.buf = self.buf, b""
        self._take(piece)
        return True

    def _line(self) -> str | None:
        end = self.buf.find(b"\n")
        if end < 0:
            if len(self.buf) > MAX_LINE:
                raise ProtocolError("chunk line too long")
            return None
        line, self.buf = self.buf[:end], self.buf[end + 1 :]
        return line.rstrip(b"\r").decode("latin-1")

    def _chunk_size(self) -> bool:
        line = self._line()
        if line is None:
            return False
        size = line.split(";", 1)[0].strip()
        if not size or len(size) > 16 or any(c not in "0123456789abcdefABCDEF" for c in size):
            raise ProtocolError(f"invalid chunk size {size[:20]!r}")
        self.remaining = int(size, 16)
        self.state = "chunk_data" if self.remaining else "trailers"
        return True

    def _chunk_data(self) -> bool:
        piece, self.buf = self.buf[: self.remaining], self.buf[self.remaining :]
        self.remaining -= len(piece)
        if not self.remaining:
            self.state = "chunk_end"
        self._take(piece)
        return True

    def _chunk_end(self) -> bool:
        line = self._line()
        if line is None:
            return False
        if line:
            raise ProtocolError("chunk not followed by CRLF")
        self.state = "chunk_size"
        return True

    def _trailers(self) -> bool:
        line = self._line()
        if line is None:
            return False
        if not line:
            self.state = "done"
        return True
