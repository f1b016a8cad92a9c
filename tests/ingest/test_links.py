"""Only plain http(s) links are kept from sources and imports: a report keeps no URL rather than a
`javascript:` one, and rows stored before this rule are not served or rendered as links either."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from kamiyo.db import Database
from kamiyo.exploits.models import ReportRow
from kamiyo.ingest import bulk, store
from kamiyo.ingest.importer import row_to_reports
from kamiyo.kit.links import web_url
from kamiyo.sources.base import Report

BAD = [
    "javascript:alert(document.cookie)",
    " JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "https://user:pw@evil.example/x",
    "//evil.example/x",
    "/relative/path",
    "https://\x00evil.example/",
]
WHEN = datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("url", BAD)
def test_a_report_keeps_no_url_rather_than_a_bad_one(url: str) -> None:
    report = Report(
        source="s", source_ref="r", protocol="P", timestamp=WHEN, url=url, references=(url, "https://a.example/x")
    )
    assert report.url is None and report.references == ("https://a.example/x",)


@pytest.mark.parametrize(
    "url", ["https://rekt.news/euler-rekt/", "HTTP://Example.org/a b", "https://x.example:8443/p?q=1#f"]
)
def test_web_links_are_kept(url: str) -> None:
    assert Report(source="s", source_ref="r", protocol="P", timestamp=WHEN, url=url).url == web_url(url) is not None


def _reports(tag: str) -> list[Report]:
    """One incident reported by several sources, each with a bad link, and one with a good link."""
    facts = {"protocol": f"Linkbait {tag}", "timestamp": WHEN, "chain": "ethereum", "amount_usd": 1_234_567.0}
    reports = [Report(source=f"src{i}", source_ref=f"{tag}-{i}", url=url, **facts) for i, url in enumerate(BAD[:4])]  # type: ignore[arg-type]
    return [*reports, Report(source="good", source_ref=f"{tag}-good", url="https://good.example/post", **facts)]  # type: ignore[arg-type]


async def _stored_urls(db: Database, tag: str) -> tuple[int, dict[str, str | None]]:
    async with db.session() as session:
        rows = (
            await session.execute(
                select(ReportRow.exploit_id, ReportRow.source, ReportRow.url).where(
                    ReportRow.source_ref.like(f"{tag}-%")
                )
            )
        ).all()
    assert rows and len({r.exploit_id for r in rows}) == 1
    return rows[0].exploit_id, {r.source: r.url for r in rows}


async def _served(client: httpx.AsyncClient, exploit_id: int) -> tuple[list[str | None], str]:
    api = await client.get(f"/exploits/{exploit_id}")
    assert api.status_code == 200
    page = await client.get(f"/app/exploits/{exploit_id}")
    assert page.status_code == 200
    return [s["url"] for s in api.json()["sources"]], page.text


@pytest.mark.parametrize("path", ["ingest", "import"])
async def test_bad_links_are_not_stored_served_or_rendered(
    path: str, db_url: str, database: Database, client: httpx.AsyncClient
) -> None:
    reports = _reports(path)
    if path == "ingest":
        async with database.session() as session:
            await store.store_reports(session, reports, notify_since=None, now=WHEN + timedelta(days=1))
    else:
        await bulk.import_reports(database, reports, notify_since=None)
    exploit_id, urls = await _stored_urls(database, path)
    assert urls == {"src0": None, "src1": None, "src2": None, "src3": None, "good": "https://good.example/post"}
    served, html = await _served(client, exploit_id)
    assert sorted(served, key=str) == [None, None, None, None, "https://good.example/post"]
    assert 'href="https://good.example/post"' in html
    for scheme in ("javascript:", "data:text", "vbscript:", "evil.example"):
        assert scheme not in html.lower()


async def test_an_imported_row_keeps_no_bad_url() -> None:
    row = {"protocol": "Imp", "chain": "bsc", "timestamp": "2024-05-01", "sources": [{"source": "x", "url": BAD[0]}]}
    (report,) = row_to_reports(row)
    assert report.url is None


async def test_links_stored_before_the_rule_are_neither_served_nor_rendered(
    database: Database, client: httpx.AsyncClient
) -> None:
    async with database.session() as session:
        exploit_id = (await session.execute(select(ReportRow.exploit_id).limit(1))).scalar_one()
        await session.execute(update(ReportRow).where(ReportRow.exploit_id == exploit_id).values(url=BAD[0]))
    served, html = await _served(client, exploit_id)
    assert served and all(url is None for url in served)
    assert "javascript:" not in html.lower()
