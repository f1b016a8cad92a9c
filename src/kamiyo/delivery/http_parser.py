"""Parsing of HTTP/1.x responses for the delivery client (`delivery.http`), by llhttp (`httptools`).

Answers come from customers' servers, so nothing in them is trusted: llhttp does the framing (no body
for 1xx, 204 and 304; chunked when Transfer-Encoding ends with chunked, else read to the close;
otherwise Content-Length; otherwise read to the close) and refuses what RFC 9112 calls invalid,
including a Content-Length beside a Transfer-Encoding and differing or listed Content-Lengths (smuggling
shapes). Around it this module caps what it holds: at most MAX_HEAD bytes before the headers end, the
first `keep` body bytes, and past DRAIN_LIMIT more the answer is cut short and the connection dropped.
Interim 1xx answers are skipped; a 101 is an error. Bare LF line ends are accepted (as before llhttp).
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools

MAX_HEAD = 65536  # bytes of status line and headers
DRAIN_LIMIT = 65536  # body bytes read past the kept excerpt before giving up the connection instead


class ProtocolError(ValueError):
    """The server's answer is not valid HTTP/1.x (or ended early)."""


class _Stop(Exception):
    """Raised in a callback to stop llhttp: the answer is complete (or cut short) and the rest is not read."""


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated names joined with ", "
    body: bytes  # at most the `keep` bytes asked for


class Parser:
    """Incremental parser of one response; `feed` and `feed_eof` answer True once it is complete."""

    __slots__ = (
        "_llhttp",
        "body",
        "done",
        "fed_in_head",
        "header_bytes",
        "headers",
        "in_head",
        "keep",
        "reusable",
        "seen",
        "status",
    )

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.seen = 0
        self.fed_in_head = 0  # bytes fed while the head was incomplete
        self.header_bytes = 0  # bytes of header names and values
        self.in_head = True  # until the final answer's headers are complete
        self.done = False
        self.reusable = True
        self._llhttp = httptools.HttpResponseParser(self)
        self._llhttp.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)

    def feed(self, data: bytes) -> bool:
        if self.done:
            self.reusable = False  # bytes after the answer: do not trust this connection again
            return True
        if self.in_head:
            self.fed_in_head += len(data)
        try:
            self._llhttp.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.done:
                raise _protocol_error(exc) from None
            self.reusable = False  # cut short, or more bytes followed the answer
        if self.in_head and self.fed_in_head > MAX_HEAD:
            raise ProtocolError("response headers too large")
        return self.done

    def feed_eof(self) -> bool:
        """The server closed the connection: complete if the answer is, or if it runs to the close."""
        if not self.done and (self.in_head or self._sized()):
            raise ProtocolError("the server closed the connection before the response was complete")
        self.done, self.reusable = True, False
        return True

    def _sized(self) -> bool:
        """Whether the body's end is marked (chunked or Content-Length) rather than by the close."""
        coding = self.headers.get("transfer-encoding")
        if coding is not None:
            return coding.rsplit(",", 1)[-1].strip().lower() == "chunked"
        return "content-length" in self.headers

    # llhttp callbacks

    def on_message_begin(self) -> None:
        if self.done:
            raise _Stop  # another answer follows the one asked for
        self.headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:  # trailers (after a chunked body) are read past, not kept
            self.header_bytes += len(name) + len(value)
            key, text = name.decode("latin-1").lower(), value.decode("latin-1").strip()
            self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        if self.header_bytes > MAX_HEAD:
            raise ProtocolError("response headers too large")
        status = self._llhttp.get_status_code()
        if status == 101:
            raise ProtocolError("unexpected 101 Switching Protocols")
        if 100 <= status < 200:
            return  # an interim answer: the real one follows
        self.status, self.in_head = status, False
        if self._llhttp.get_http_version() != "1.1" or not self._llhttp.should_keep_alive():
            self.reusable = False

    def on_body(self, data: bytes) -> None:
        if len(self.body) < self.keep:
            self.body += data[: self.keep - len(self.body)]
        self.seen += len(data)
        if self.seen > DRAIN_LIMIT + self.keep:  # a big answer: stop reading it, close the connection
            self.done, self.reusable = True, False
            raise _Stop

    def on_message_complete(self) -> None:
        if not self.in_head:
            self.done = True


def _protocol_error(exc: httptools.HttpParserError) -> ProtocolError:
    """llhttp's reason, under the name of what was wrong (a callback's own ProtocolError as it is)."""
    if isinstance(exc.__context__, ProtocolError):
        return exc.__context__
    reason = str(exc)
    lowered = reason.lower()
    if isinstance(exc, httptools.HttpParserInvalidStatusError) or "expected http/" in lowered:
        what = "not an HTTP/1.x status line"
    elif "content-length" in lowered:
        what = "invalid Content-Length"
    elif "chunk size" in lowered:
        what = "invalid chunk size"
    elif "chunk" in lowered:
        what = "invalid chunked body"
    elif "header" in lowered:
        what = "malformed response header"
    else:
        what = "invalid HTTP response"
    return ProtocolError(f"{what} ({reason})")
