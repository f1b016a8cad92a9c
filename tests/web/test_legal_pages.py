"""`/.well-known/security.txt` from settings (RFC 9116), and `/terms` and `/privacy` in the dashboard's layout
with the operator's own text: a file named by a setting, a file in the data folder, or the shipped default."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import make_client, make_settings

pytestmark = pytest.mark.reads_seed  # every test here only reads the seeded database


@asynccontextmanager
async def _client(db_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for client in make_client(make_settings(db_url, **settings)):
        yield client


def _fields(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split(": ", 1)) for line in text.splitlines() if line and not line.startswith("#")]  # type: ignore[misc]


async def test_security_txt_has_the_rfc_9116_fields(db_url: str) -> None:
    contact = "security@example.org, https://example.org/report"
    async with _client(db_url, KAMIYO_SECURITY_CONTACT=contact, KAMIYO_PUBLIC_URL="https://kamiyo.example") as c:
        response = await c.get("/.well-known/security.txt")
        page = await c.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    fields = _fields(response.text)
    assert [v for k, v in fields if k == "Contact"] == ["mailto:security@example.org", "https://example.org/report"]
    values = dict(fields)
    expires = datetime.fromisoformat(values["Expires"].replace("Z", "+00:00"))
    assert datetime.now(UTC) + timedelta(days=30) < expires < datetime.now(UTC) + timedelta(days=365)
    assert values["Preferred-Languages"] == "en"
    assert values["Canonical"] == "https://kamiyo.example/.well-known/security.txt"
    assert {k for k, _ in fields} == {"Contact", "Expires", "Preferred-Languages", "Canonical"}
    assert 'href="/.well-known/security.txt"' in page.text


async def test_no_security_txt_without_a_contact(db_url: str) -> None:
    async with _client(db_url) as c:
        response = await c.get("/.well-known/security.txt")
        page = await c.get("/")
    assert response.status_code == 404 and "KAMIYO_SECURITY_CONTACT" in response.json()["error"]["message"]
    assert "security.txt" not in page.text  # no footer link to a missing file


async def test_default_terms_and_privacy_in_the_dashboard_layout(db_url: str, tmp_path: Path) -> None:
    async with _client(db_url, KAMIYO_DATA_DIR=str(tmp_path)) as c:
        terms, privacy, home = await c.get("/terms"), await c.get("/privacy"), await c.get("/")
    for page, heading in ((terms, "Terms of service"), (privacy, "Privacy")):
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'<h1 id="policy-title">{heading}</h1>' in page.text
        assert 'class="site-header"' in page.text and 'class="site-footer"' in page.text  # the layout
        assert "The operator of this server replaces it" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<li>" in privacy.text and "cookie" in privacy.text.lower()
    assert 'href="/terms"' in home.text and 'href="/privacy"' in home.text


async def test_the_operator_replaces_the_texts(db_url: str, tmp_path: Path) -> None:
    terms = tmp_path / "our-terms.txt"
    terms.write_text("# Our rules\n\nBe <b>kind</b> & fair.\nSecond line.\n\n- one\n- two\n", encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    (data / "privacy.html").write_text('<h2 id="ours">Our privacy</h2><p>We keep <em>nothing</em>.</p>')
    async with _client(db_url, KAMIYO_TERMS_FILE=str(terms), KAMIYO_DATA_DIR=str(data)) as c:
        terms_page, privacy_page = await c.get("/terms"), await c.get("/privacy")
    assert terms_page.status_code == 200
    assert "<h2>Our rules</h2>" in terms_page.text
    assert "<p>Be &lt;b&gt;kind&lt;/b&gt; &amp; fair. Second line.</p>" in terms_page.text  # text stays text
    assert "<ul><li>one</li><li>two</li></ul>" in terms_page.text
    assert "replaces it" not in terms_page.text and "DeFiHackLabs under" not in terms_page.text
    assert '<h2 id="ours">Our privacy</h2><p>We keep <em>nothing</em>.</p>' in privacy_page.text  # HTML as written
    assert 'class="site-header"' in privacy_page.text and "replaces it" not in privacy_page.text


async def test_a_configured_file_that_is_missing_is_a_clear_503_page(db_url: str, tmp_path: Path) -> None:
    async with _client(db_url, KAMIYO_PRIVACY_FILE=str(tmp_path / "gone.txt")) as c:
        response = await c.get("/privacy")
    assert response.status_code == 503 and response.headers["content-type"].startswith("text/html")
    assert "Temporarily unavailable" in response.text and str(tmp_path) not in response.text
