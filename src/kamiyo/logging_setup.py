"""Structured logs: JSON lines when stderr is not a terminal, readable text when it is.

Every line logged while a request is handled carries its `request_id` (set by the observability
middleware in a context variable). A redaction filter on the handler masks anything shaped like a
credential — API keys, webhook secrets, Stripe keys, bearer tokens, passwords, URL passwords — as a
safety net behind the rule that code never logs secrets in the first place.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from contextvars import ContextVar
from typing import Any, TextIO

import orjson

from kamiyo.kit.timeutil import iso, utcnow

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}

request_id_var: ContextVar[str | None] = ContextVar("kamiyo_request_id", default=None)

MASK = "[REDACTED]"
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # user:password@ in URLs (database, SMTP, Redis).
    (re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+@", re.IGNORECASE), r"\1" + MASK + "@"),
    # password=..., "password": "...", X-API-Key: ..., secret_key=..., token=...
    (
        re.compile(
            r"""(?P<key>["']?\b[\w\-]*(?:password|passwd|secret|api[_\-]?key|token)(?:[_\-]?(?:key|hash))?["']?\s*[:=]\s*)"""
            r"""(?P<val>"[^"]*"|'[^']*'|[^\s,;&}\]]+)""",
            re.IGNORECASE,
        ),
        r"\g<key>" + MASK,
    ),
    # Authorization header values.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE), r"\1 " + MASK),
    # Kamiyo API keys, webhook signing secrets, Stripe secret/restricted keys, Telegram bot tokens in URLs.
    (re.compile(r"\bkmy_[A-Za-z0-9_\-]+"), "kmy_" + MASK),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]+"), "whsec_" + MASK),
    (re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]+"), r"\1_\2_" + MASK),
    (re.compile(r"\bbot\d{5,}:[A-Za-z0-9_\-]{20,}"), "bot" + MASK),
]


# One scan that every pattern above needs to hit; most lines fail it and are returned as they are.
_TRIGGER = re.compile(
    r"kmy_|whsec_|[sr]k_(?:live|test)_|bearer|basic|bot\d|://|passw|secret|api.?key|token", re.IGNORECASE
)


def redact(text: str) -> str:
    """Mask credential-shaped substrings. Cheap enough for every log line."""
    if not _TRIGGER.search(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RequestContextFilter(logging.Filter):
    """Adds the current request id (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class RedactingFilter(logging.Filter):
    """Renders message, string extras and tracebacks once, with credentials masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        attrs = record.__dict__
        for key in attrs.keys() - _RESERVED:  # the `extra` fields
            value = attrs[key]
            if isinstance(value, str):
                attrs[key] = redact(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso(utcnow()),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        attrs = record.__dict__
        entry.update({k: attrs[k] for k in attrs.keys() - _RESERVED if not k.startswith("_")})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [{request_id}]" if request_id else line


class KamiyoHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler configure_logging installs (a type of its own, so `direct_json_handler` can tell it)."""


def direct_json_handler(logger: logging.Logger) -> KamiyoHandler | None:
    """Our JSON handler when it is the only place an INFO line of `logger` goes, else None.

    Lets a very frequent line of known-safe fields skip the LogRecord, the filters and the formatter (about
    30 µs a line, a quarter of a cached API answer's CPU); with any other handler, filter or level in play
    (a test's capture, a custom setup) the caller logs the ordinary way."""
    if logger.handlers or logger.filters or not logger.propagate or not logger.isEnabledFor(logging.INFO):
        return None
    handlers = logging.root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not KamiyoHandler or type(handler.formatter) is not JsonFormatter:
        return None
    return handler if handler.level <= logging.INFO else None


def write_json_line(handler: KamiyoHandler, logger: str, message: str, fields: dict[str, Any]) -> None:
    """One INFO line in JsonFormatter's shape, written under the handler's lock (fields must hold no secret)."""
    entry: dict[str, Any] = {"ts": iso(utcnow()), "level": "info", "logger": logger, "msg": message}
    request_id = request_id_var.get()
    if request_id is not None:
        entry["request_id"] = request_id
    entry.update(fields)
    line = orjson.dumps(entry).decode() + handler.terminator
    with handler.lock or contextlib.nullcontext():
        try:
            handler.stream.write(line)
            handler.flush()
        except Exception:  # as logging does: a broken stream must not fail the request
            handler.handleError(logging.makeLogRecord({"msg": message}))


def configure_logging(level: str = "INFO", *, json_logs: bool | None = None, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    if json_logs is None:
        json_logs = not stream.isatty()
    handler = KamiyoHandler(stream)
    handler.setFormatter(JsonFormatter() if json_logs else TextFormatter())
    handler.addFilter(RequestContextFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "aiosqlite", "alembic.runtime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def ensure_logging(level: str = "INFO") -> None:
    """Configure logging where nothing did yet, e.g. in the processes uvicorn spawns for `--workers N`."""
    if not logging.getLogger().handlers:
        configure_logging(level)
