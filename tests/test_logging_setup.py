"""Structured logs: JSON lines, a request id on every line of a request, one access line, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kamiyo.logging_setup import configure_logging, redact
from tests.support.app import make_client, make_settings

SECRETS = {
    "api_key": "kmy_live_4f9d2c7b1a8e6f3d5c2b9a7e",
    "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "stripe": "sk_live_51HqLyjWDarjtT1zdp7dcXvYt",
    "stripe_test": "sk_test_26PHem9AhJZvU623DfE1x4sd",
    "bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "password": "correct horse battery staple",
    "db_password": "pg-s3cr3t-pw",
    "bot_token": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
}


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Route the root logger to a buffer in JSON, as `kamiyo serve` does when stderr is not a terminal."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("INFO", json_logs=True, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_every_line_of_a_request_carries_its_request_id(log_stream: io.StringIO, tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}")  # a folder: every query fails and is logged
    async for client in make_client(settings):
        response = await client.get("/exploits?chain=bsc", headers={"X-Request-ID": "req-abc-1"})
        other = await client.get("/ping")
    assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"
    assert response.headers["x-request-id"] == "req-abc-1"
    mine = [line for line in _lines(log_stream) if line.get("request_id") == "req-abc-1"]
    assert {line["logger"] for line in mine} >= {"kamiyo.errors", "kamiyo.access"}
    access = [line for line in mine if line["logger"] == "kamiyo.access"]
    assert len(access) == 1
    assert access[0]["route"] == "/exploits" and access[0]["status"] == 503 and access[0]["method"] == "GET"
    assert access[0]["duration_ms"] >= 0
    other_lines = [line for line in _lines(log_stream) if line.get("request_id") == other.headers["x-request-id"]]
    assert [line["route"] for line in other_lines] == ["/ping"]


async def test_access_lines_never_hold_query_strings_or_credentials(log_stream: io.StringIO, db_url: str) -> None:
    async for client in make_client(make_settings(db_url)):
        await client.get(
            f"/exploits?api_key={SECRETS['api_key']}&chain=bsc&token={SECRETS['bearer']}",
            headers={
                "Authorization": f"Bearer {SECRETS['api_key']}",
                "X-API-Key": SECRETS["api_key"],
                "Cookie": f"kamiyo_session={SECRETS['bearer']}",
            },
        )
        await client.get(f"/exploits/{SECRETS['webhook_secret']}")
    out = log_stream.getvalue()
    assert '"route":"/exploits"' in out and '"route":"/exploits/{ref}"' in out
    assert "chain=bsc" not in out and "api_key" not in out
    for secret in SECRETS.values():
        assert secret not in out


async def test_access_lines_are_the_same_written_directly_or_through_logging(
    log_stream: io.StringIO, db_url: str
) -> None:
    """The access line skips the logging machinery when our JSON handler is its only destination; with any
    other handler attached (here a second one) it goes the ordinary way. Both must write the same line."""
    extra = logging.StreamHandler(io.StringIO())
    async for client in make_client(make_settings(db_url)):
        await client.get("/exploits?page_size=1", headers={"X-Request-ID": "direct-1"})
        logging.getLogger().addHandler(extra)
        try:
            await client.get("/exploits?page_size=1", headers={"X-Request-ID": "logged-1"})
        finally:
            logging.getLogger().removeHandler(extra)
    by_id = {line.get("request_id"): line for line in _lines(log_stream) if line["logger"] == "kamiyo.access"}
    direct, logged = by_id["direct-1"], by_id["logged-1"]
    assert list(direct) == list(logged)  # the same fields in the same order
    for line in (direct, logged):
        line.pop("ts"), line.pop("request_id")
        assert line.pop("msg") == f"GET /exploits 200 {line.pop('duration_ms'):.1f}ms"
    assert direct == logged == {"level": "info", "logger": "kamiyo.access", "method": "GET", "route": "/exploits",
                                "status": 200}  # fmt: skip
    assert "GET /exploits 200" in extra.stream.getvalue()  # the second handler got its line too


def test_redaction_masks_credentials_in_messages_arguments_extras_and_tracebacks(log_stream: io.StringIO) -> None:
    log = logging.getLogger("kamiyo.test")
    log.info("created key %s for user", SECRETS["api_key"])
    log.warning("stripe said no with %s / %s", SECRETS["stripe"], SECRETS["stripe_test"])
    log.info("header Authorization: Bearer %s", SECRETS["bearer"])
    log.info("login attempt", extra={"body": f'{{"email": "a@b.c", "password": "{SECRETS["password"]}"}}'})
    log.info("connecting to postgresql://kamiyo:%s@db:5432/kamiyo", SECRETS["db_password"])
    log.info("POST https://api.telegram.org/bot%s/sendMessage", SECRETS["bot_token"])
    try:
        raise ValueError(f"signature check failed for {SECRETS['webhook_secret']}")
    except ValueError:
        log.exception("webhook send failed")
    out = log_stream.getvalue()
    for name, secret in SECRETS.items():
        assert secret not in out, name
    lines = _lines(log_stream)
    assert len(lines) == 7 and lines[-1]["exc"].startswith("Traceback")
    assert "whsec_[REDACTED]" in lines[-1]["exc"] and "kmy_[REDACTED]" in lines[0]["msg"]
    assert lines[3]["body"].startswith('{"email": "a@b.c", "password": [REDACTED]')


def test_redaction_keeps_ordinary_text() -> None:
    for text in ("GET /exploits/{ref} 200 3.1ms", "tokens: 5, max_tokens=3", "http://127.0.0.1:8000/a@b"):
        assert redact(text) == text


def test_text_format_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = Tty()
    try:
        configure_logging("INFO", stream=stream)
        logging.getLogger("kamiyo.test").info("hello %s", "world")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    assert "INFO kamiyo.test: hello world" in stream.getvalue()
    assert not stream.getvalue().startswith("{")
