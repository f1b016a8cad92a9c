"""Server-rendered pages through the ASGI app on SQLite and PostgreSQL: content, filters, CSV, errors."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import httpx
import pytest
from sqlalchemy import select

from kamiyo import tiers
from kamiyo.db import Database
from kamiyo.exploits.models import Exploit
from kamiyo.exploits.stats import compute_stats, refresh_days
from kamiyo.ingest.store import store_reports
from kamiyo.sources.base import Report
from kamiyo.web import queries
from kamiyo.web import router as web_router


def _text(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _title(html: str) -> str:
    match = re.search(r"<title>(.*?)</title>", html, re.S)
    assert match
    return unescape(match.group(1))


def _row_links(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<th scope="row"><a href="/app/exploits/(\d+)"', html)]


@pytest.mark.reads_seed
async def test_home_shows_windows_chart_breakdowns_newest_and_sources(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert _title(html) == "Kamiyo — crypto exploit intelligence"
    for label in ("Last 24 hours", "Last 7 days", "Last 30 days", "Losses over time", "Losses by chain"):
        assert label in html
    assert html.count('<svg class="chart ') == 2 and '<title id="chart-monthly-t">Losses per month</title>' in html
    newest = (await client.get("/exploits?page_size=8")).json()["data"]
    assert _row_links(html) == [e["id"] for e in newest]
    assert 'href="/app/exploits?chain=ethereum"' in html  # breakdown rows link into the explorer
    assert "DeFiHackLabs" in html and "Incident data: DeFiHackLabs (Apache-2.0)" in html
    assert "default-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.reads_seed
async def test_home_yearly_table_adds_up_to_all_losses(client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text
    table = html[html.index("Losses per year</caption>") :]
    counts = [int(c.replace(",", "")) for c in re.findall(r'<td class="num">([\d,]+)</td><td class="num">\$', table)]
    total = (await client.get("/exploits?page_size=1")).json()["total"]
    assert sum(counts) == total


@pytest.mark.reads_seed
async def test_explorer_reflects_filters_and_matches_the_api(client: httpx.AsyncClient) -> None:
    query = "chain=bsc&min_amount=1000000&sort=-amount_usd&q=&protocol="
    html = (await client.get(f"/app/exploits?{query}")).text
    api = (await client.get("/exploits?chain=bsc&min_amount=1000000&sort=-amount_usd")).json()
    assert f"{api['total']:,} exploits match" in _text(html)
    assert _row_links(html) == [e["id"] for e in api["data"]]
    assert '<option value="bsc" selected>' in html
    assert 'name="min_amount" type="text" inputmode="decimal" value="1000000"' in html
    assert '<option value="-amount_usd" selected>' in html
    csv_href = re.search(r'href="(/app/exploits\.csv\?[^"]*)"', html)
    assert csv_href and unescape(csv_href.group(1)) == "/app/exploits.csv?chain=bsc&min_amount=1000000&sort=-amount_usd"


@pytest.mark.reads_seed
async def test_explorer_pages_agree_with_api_pages(client: httpx.AsyncClient) -> None:
    html = (await client.get("/app/exploits?category=reentrancy&page_size=25&page=2")).text
    api = (await client.get("/exploits?category=reentrancy&page_size=25&page=2")).json()
    assert _row_links(html) == [e["id"] for e in api["data"]]
    assert 'href="/app/exploits?category=reentrancy&amp;page_size=25" rel="prev"' in html
    pages = -(-api["total"] // 25)
    assert f"Page 2 of {pages}" in html


@pytest.mark.reads_seed
@pytest.mark.parametrize("query", ["", "?page=3&sort=-amount_usd&page_size=25", "?sort=timestamp&page=2"])
async def test_unfiltered_explorer_counts_from_summaries_like_the_api(client: httpx.AsyncClient, query: str) -> None:
    html = (await client.get(f"/app/exploits{query}")).text
    api = (await client.get(f"/exploits{query}")).json()
    assert _row_links(html) == [e["id"] for e in api["data"]]
    assert f"{api['total']:,} exploits</h2>" in re.sub(r"\s+", " ", html).replace(" </h2>", "</h2>")


@pytest.mark.reads_seed
async def test_explorer_sort_header_toggles_direction(client: httpx.AsyncClient) -> None:
    html = (await client.get("/app/exploits?sort=-amount_usd")).text
    assert 'aria-sort="descending"' in html
    assert 'href="/app/exploits?sort=amount_usd"' in html  # clicking "Lost" again sorts ascending


@pytest.mark.input_matrix
@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("min_amount=lots", "min_amount", "Enter a number of US dollars"),
        ("min_amount=-5", "min_amount", "Must be at least 0"),
        ("max_amount=1e14", "max_amount", "Must be at most 10,000,000,000,000"),
        ("chain=atlantis", "chain", "Unknown value 'atlantis'"),
        ("since=yesterday", "since", "Not an ISO-8601 date"),
        ("min_amount=10&max_amount=5", "min_amount", "Greater than max_amount"),
        ("q=" + "x" * 201, "q", "At most 200 characters"),
    ],
)
async def test_invalid_filter_is_an_inline_error_not_an_error_page(
    client: httpx.AsyncClient, query: str, field: str, message: str
) -> None:
    api = await client.get(f"/exploits?{query}")
    assert api.status_code == 422  # the API refuses the same value
    response = await client.get(f"/app/exploits?{query}")
    assert response.status_code == 200
    html = response.text
    error = re.search(rf'<p class="field-error" id="err-{field}">(.*?)</p>', html)
    assert error and message in unescape(error.group(1))
    assert f'aria-describedby="err-{field}"' in html
    assert _row_links(html) == []


@pytest.mark.reads_seed
async def test_csv_download_matches_the_filtered_api_set(client: httpx.AsyncClient) -> None:
    response = await client.get("/app/exploits.csv?chain=ethereum&since=2022-01-01&sort=timestamp")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    ids: list[int] = []
    url = "/exploits?chain=ethereum&since=2022-01-01&sort=timestamp&page_size=500"
    body = (await client.get(url)).json()
    ids += [e["id"] for e in body["data"]]
    while body["next_cursor"]:
        body = (await client.get(f"{url}&cursor={body['next_cursor']}")).json()
        ids += [e["id"] for e in body["data"]]
    assert [int(r["id"]) for r in rows] == ids and len(ids) > 50
    assert {r["chain"] for r in rows} == {"ethereum"}


@pytest.mark.reads_seed
async def test_csv_download_is_capped_for_anonymous_visitors(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiers, "ANONYMOUS_CSV_ROWS", 7)
    response = await client.get("/app/exploits.csv")
    assert len(list(csv.DictReader(io.StringIO(response.text)))) == 7
    assert "first 7 of" in _text((await client.get("/app/exploits")).text)


@pytest.mark.reads_seed
async def test_csv_with_invalid_filter_is_422_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/app/exploits.csv?max_amount=nope")
    assert response.status_code == 422 and response.text.startswith("max_amount:")


@pytest.mark.reads_seed
async def test_exploit_page_shows_facts_reports_timeline_and_explorer_links(client: httpx.AsyncClient) -> None:
    exploit = (await client.get("/exploits?sort=-amount_usd&chain=ethereum&page_size=1")).json()["data"][0]
    html = (await client.get(f"/app/exploits/{exploit['id']}")).text
    assert _title(html) == f"{exploit['name']} exploit · Kamiyo"
    text = _text(html)
    assert f"${exploit['amount_usd']:,.0f}" in text
    assert re.search(r"(Reported by|Seen in) DeFiHackLabs", text) and "First seen by Kamiyo" in text
    for report in exploit["sources"]:
        assert f'href="{report["url"]}"' in html
    if exploit["tx_hash"]:
        assert f'href="https://etherscan.io/tx/{exploit["tx_hash"]}"' in html
    if exploit["attacker_address"]:
        assert f'href="https://etherscan.io/address/{exploit["attacker_address"]}"' in html
        assert "Attacker" in text


@pytest.mark.reads_seed
async def test_exploit_page_is_found_by_transaction_hash_too(client: httpx.AsyncClient) -> None:
    exploit = (await client.get("/exploits?chain=bsc&page_size=1")).json()["data"][0]
    assert exploit["tx_hash"]
    response = await client.get(f"/app/exploits/{exploit['tx_hash'].upper().replace('0X', '0x')}")
    assert response.status_code == 200 and f"<h1>{exploit['name']}</h1>" in response.text


@pytest.mark.reads_seed
async def test_unknown_exploit_is_an_html_404_while_api_paths_keep_json(client: httpx.AsyncClient) -> None:
    page = await client.get("/app/exploits/987654321")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert _title(page.text) == "Page not found · Kamiyo"
    for path in ("/exploits/987654321", "/api/v1/exploits/987654321", "/no-such-api-path"):
        api = await client.get(path)
        assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    missing_page = await client.get("/app/nothing-here")
    assert missing_page.status_code == 404 and "Page not found" in missing_page.text


@pytest.mark.reads_seed
async def test_sources_page_lists_health_and_rankings_with_each_component(client: httpx.AsyncClient) -> None:
    html = (await client.get("/app/sources")).text
    sources = (await client.get("/sources")).json()
    for source in sources:
        assert source["title"] in unescape(html)
    assert "Healthy" in html  # the seeded DeFiHackLabs run
    for days, label in ((365, "1 year"), (30, "30 days")):
        page = (await client.get("/app/sources" if days == 365 else f"/app/sources?days={days}")).text
        assert f'href="/app/sources?days={days}#rankings" aria-current="page">{label}</a>' in page
        ranking = (await client.get(f"/sources/rankings?days={days}")).json()
        shown = [r for r in ranking if r["reports"] or r["uptime"] is not None]
        body = page.split('<table class="data rankings">')[1].split("</table>")[0]
        rows = re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>")[1], re.S)
        assert len(rows) == len(shown) > 0
        first, top = _text(rows[0]).strip(), shown[0]
        assert first.startswith(f"{top['rank']} DeFiHackLabs") and f"{top['score']:.2f}" in first
        for part in ("exclusivity", "coverage", "accuracy", "uptime"):
            value = top[part]
            assert (f"{part} {value * 100:.0f} %" if value is not None else f"{part} —") in first
        assert f"{top['reports']:,} reports, {top['timed_reports']:,} timed" in first
        assert top["speed_median_s"] is None and "speed unknown" in first  # the bundled history has no report times
        idle = [r["source"] for r in ranking if not r["reports"] and r["uptime"] is None]
        assert all(web_router.REGISTRY[name].title in unescape(page.split("No reports or runs")[1]) for name in idle)
    assert 'aria-current="page">1 year</a>' in (await client.get("/app/sources?days=7")).text  # not a window: default


@pytest.mark.reads_seed
async def test_static_files_are_cacheable_and_pages_are_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text
    css = re.search(r'href="(/static/kamiyo\.css\?v=[0-9a-f]+)"', html)
    assert css
    static = await client.get(css.group(1))
    assert static.status_code == 200 and "immutable" in static.headers["cache-control"]
    assert web_router.router.routes and not [r for r in web_router.router.routes if getattr(r, "include_in_schema", 0)]
    assert (await client.get("/app", follow_redirects=False)).headers["location"] == "/app/exploits"


@pytest.mark.reads_seed
async def test_home_window_totals_equal_the_stats_service(database: Database) -> None:
    now = datetime(2026, 8, 21, 13, 30, tzinfo=UTC)  # just after the bundled data's newest incidents
    windows = (1, 7, 30, 365)
    async with database.session() as session:
        totals = await queries.window_totals(session, windows, now=now)
        for total, days in zip(totals, windows, strict=True):
            stats = await compute_stats(session, days, now=now)
            assert total.exploits == stats["total_exploits"]
            assert total.loss_usd == pytest.approx(stats["total_loss_usd"])
            assert total.recovered_usd == pytest.approx(stats["recovered_usd"])
    assert totals[-1].exploits > totals[1].exploits > 0


async def test_home_overview_follows_a_changed_exploit_at_once(database: Database) -> None:
    async with database.session() as session:
        before = await queries.cached_overview(session)
        exploit = (await session.execute(select(Exploit).where(Exploit.amount_usd.is_not(None)).limit(1))).scalar_one()
        exploit.amount_usd = (exploit.amount_usd or 0.0) + 1e9
        exploit.updated_at = datetime.now(UTC)
        await session.flush()
        await refresh_days(session, [exploit.timestamp.date()])
        after = await queries.cached_overview(session)
    assert after.total_loss_usd == pytest.approx(before.total_loss_usd + 1e9)


async def test_exploit_page_times_only_reports_with_a_known_time(client: httpx.AsyncClient, db_url: str) -> None:
    incident = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    db = Database(db_url)
    async with db.session() as session:
        result = await store_reports(
            session,
            [
                Report("rekt", "timed", "Timeline Fixture", incident, reported_at=incident + timedelta(hours=2)),
                Report("defillama", "untimed|2026-11-01", "Timeline Fixture", incident),  # backfill: no time
            ],
        )
    await db.dispose()
    [exploit_id] = result.created
    html = (await client.get(f"/app/exploits/{exploit_id}")).text
    timeline = _text(html.split('<ol class="timeline">')[1].split("</ol>")[0])
    reports = _text(html.split('id="reports-title"')[1].split("</table>")[0])
    assert "2 h after the incident" in timeline and timeline.count("after the incident") == 2  # rekt, first seen
    assert timeline.rstrip().endswith("Report time not known (backfilled history) Reported by DeFiLlama Hacks")
    assert "2026-11-01 10:00 UTC" in reports and "unknown" in reports


async def test_exploit_page_shows_every_record_fact(client: httpx.AsyncClient, database: Database) -> None:
    from tests.exploits.test_record_facts import LINK, PORTAL_TX, _store, _wormhole

    await _store(database, _wormhole())
    exploit = (await client.get("/exploits?q=portal")).json()["data"][0]
    html = (await client.get(f"/app/exploits/{exploit['id']}")).text
    text = _text(html)
    assert f"<h1>{exploit['name']}</h1>" in html and f"Also known as {', '.join(exploit['aliases'])}" in text
    assert re.search(r"Chains Solana \(primary\) ?, Ethereum", text) and 'href="/app/exploits?chain=ethereum"' in html
    assert "Target Bridge" in text and 'href="/app/exploits?target_type=bridge"' in html
    assert "Technique Signature verification bypass" in text and "Classification Infrastructure" in text
    assert "day as the sources state it" in text and "Stated in USD by a source" in text
    assert f'href="https://solscan.io/tx/{PORTAL_TX}"' in html  # a Solana signature on Solana's explorer
    assert (
        "Attack contracts" in text
        and 'href="https://solscan.io/account/CxegPrfn2ge5dNiQberUrQJkHCcimeR4VXkeawcFBBka"' in html
    )
    assert f'href="{LINK}"' in html


async def test_explorer_filters_by_target_type_and_any_chain(client: httpx.AsyncClient, database: Database) -> None:
    from tests.exploits.test_record_facts import _store, _wormhole

    await _store(database, _wormhole())
    html = (await client.get("/app/exploits?target_type=bridge&chain=ethereum")).text
    api = (await client.get("/exploits?target_type=bridge&chain=ethereum")).json()
    assert api["total"] >= 1 and _row_links(html) == [e["id"] for e in api["data"]]
    assert '<option value="bridge" selected>' in html and "Solana +1" in _text(html)  # its other chain, counted
    bad = await client.get("/app/exploits?target_type=%3Cb%3E")
    assert bad.status_code == 200 and "Not a target type" in _text(bad.text) and "<b>" not in bad.text
