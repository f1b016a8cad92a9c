"""Links Kamiyo hands out (feed, alerts) use KAMIYO_PUBLIC_URL, never the request's Host header; an unset
public URL is announced when the server listens beyond loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from kamiyo.cli import app
from kamiyo.config import get_settings
from kamiyo.delivery.channels.format import summarise
from tests.support.app import make_client, make_settings

pytestmark = pytest.mark.reads_seed  # every test here only reads the seeded database


def _feed_links(body: bytes) -> list[str]:
    root = ET.fromstring(body)
    links = [
        link.attrib["href"]
        for link in root.iter("{http://www.w3.org/2005/Atom}link")
        if link.attrib.get("rel") != "related"  # explorer links point elsewhere by design
    ]
    ids = [node.text or "" for node in root.iter("{http://www.w3.org/2005/Atom}id")]
    return links + ids


async def test_feed_links_use_the_public_url_not_the_host_header(db_url: str) -> None:
    settings = make_settings(db_url, KAMIYO_PUBLIC_URL="https://kamiyo.example/")
    async for client in make_client(settings):
        response = await client.get("/feed.xml", headers={"Host": "evil.example"})
    assert response.status_code == 200
    links = _feed_links(response.content)
    assert len(links) > 50
    assert all(link.startswith("https://kamiyo.example/") for link in links), links[:3]
    assert not any("evil.example" in link or "testserver" in link for link in links)


async def test_feed_without_a_public_url_uses_the_local_default_whatever_the_host(db_url: str) -> None:
    async for client in make_client(make_settings(db_url)):
        response = await client.get("/feed.xml", headers={"Host": "evil.example:8443"})
    links = _feed_links(response.content)
    assert links and all(link.startswith("http://127.0.0.1:8000/") for link in links)


async def test_test_alert_links_use_the_public_url(db_url: str) -> None:
    from kamiyo.db import Database
    from kamiyo.delivery import service as delivery

    settings = make_settings(db_url, KAMIYO_PUBLIC_URL="https://alerts.example")
    db = Database(db_url)
    try:
        async with db.session() as session:
            summary = summarise("webhook.test", await delivery.sample_exploit(session), settings.public_url, None)
    finally:
        await db.dispose()
    assert summary.kamiyo_url.startswith("https://alerts.example/app/exploits/")


@pytest.mark.parametrize("value", ["javascript:alert(1)", "kamiyo.example", "ftp://kamiyo.example"])
def test_a_public_url_that_is_not_http_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="KAMIYO_PUBLIC_URL"):
        make_settings("sqlite:///x.db", KAMIYO_PUBLIC_URL=value)


def test_a_public_url_is_kept_without_its_trailing_slash_whatever_the_scheme_case() -> None:
    assert make_settings("sqlite:///x.db", KAMIYO_PUBLIC_URL="HTTPS://Kamiyo.example/").public_url == (
        "HTTPS://Kamiyo.example"
    )


@pytest.fixture
def started(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """`kamiyo serve` up to the point where uvicorn would take over (its arguments are recorded instead)."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("KAMIYO_DATABASE_URL", f"sqlite:///{tmp_path / 'kamiyo.db'}")
    monkeypatch.setenv("KAMIYO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KAMIYO_SEED", "0")
    monkeypatch.delenv("KAMIYO_PUBLIC_URL", raising=False)
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_serve_warns_when_public_url_is_unset_beyond_loopback(started: list[dict[str, Any]], host: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--host", host, "--port", "8001"])
    assert result.exit_code == 0, result.output
    assert started and started[0]["host"] == host
    assert "KAMIYO_PUBLIC_URL is unset" in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_serve_is_quiet_about_the_public_url_on_loopback(started: list[dict[str, Any]], host: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--host", host])
    assert result.exit_code == 0, result.output
    assert started and "KAMIYO_PUBLIC_URL" not in result.output


def test_serve_is_quiet_when_the_public_url_is_set(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAMIYO_PUBLIC_URL", "https://kamiyo.example")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert started and "KAMIYO_PUBLIC_URL" not in result.output
