"""The Telegram preview family (`kamiyo.sources._telegram`: telegram_zachxbt, telegram_defimon): awkward cases.

Pages are built in the markup of `https://t.me/s/<channel>` (message wrap, bubble, text div, footer
date link with `time[datetime]`, `?before=<id>` for older posts). Paging is played by a loopback server.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from kamiyo.ingest.runner import fetch_reports
from kamiyo.sources import REGISTRY, _telegram
from kamiyo.sources._telegram import parse_posts, post_report
from kamiyo.sources.base import Document, ParseError, Report
from kamiyo.sources.http import Fetcher, FetchPolicy, SourceContext, new_client
from tests.sources.fixture_server import FIXTURES
from tests.sources.paged_server import paged_api

EMOJI = '<i class="emoji" style="background-image:url(\'//telegram.org/img/emoji/40/F09F9AA8.png\')"><b>🚨</b></i>'
TX = "0x2aec4fdb2a09ad4269a410f2c770737626fb62c54e0fa8ac25e8582d4b690cca"


def message(number: int, text: str | None, when: str | None = "2023-08-13T14:05:00+00:00", extra: str = "") -> str:
    date = (
        f'<a class="tgme_widget_message_date" href="https://t.me/investigations/{number}">'
        f'<time datetime="{when}" class="time">14:05</time></a>'
        if when
        else ""
    )
    body = f'<div class="tgme_widget_message_text js-message_text" dir="auto">{text}</div>' if text is not None else ""
    return (
        '<div class="tgme_widget_message_wrap js-widget_message_wrap">'
        f'<div class="tgme_widget_message js-widget_message" data-post="investigations/{number}">'
        f'<div class="tgme_widget_message_bubble">{extra}{body}'
        f'<div class="tgme_widget_message_footer"><span class="tgme_widget_message_meta">{date}</span></div>'
        "</div></div></div>"
    )


def page(*messages: str) -> bytes:
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><main class="tgme_main">'
            '<section class="tgme_channel_history js-message_history">' + "".join(messages)
            + "</section></main></body></html>").encode()  # fmt: skip


def page_reports(name: str, document: Document) -> list[Report]:
    """What the source's fetch keeps of one page."""
    return [r for r in (post_report(name, p) for p in parse_posts(document)) if r is not None]


def reports(body: bytes) -> list[Report]:
    return page_reports("telegram_zachxbt", Document("https://t.me/s/investigations", 200, body))


def test_entities_emoji_markup_and_line_breaks() -> None:
    text = (f"{EMOJI} Zunami Protocol was exploited for ~$2.1M &amp; the attacker&#39;s funds moved.<br>"
            f'Tx: <a href="https://etherscan.io/tx/{TX}" target="_blank" rel="noopener">0x2aec…0cca</a>')  # fmt: skip
    (report,) = reports(page(message(1, text)))
    assert report.protocol == "Zunami Protocol" and report.amount_usd == 2.1e6 and report.tx_hash == TX
    first, second = report.raw["text"].split("\n")
    assert first == "🚨 Zunami Protocol was exploited for ~$2.1M & the attacker's funds moved."
    assert second == "Tx: 0x2aec…0cca"


@pytest.mark.parametrize(
    "stamp",
    ["2023-08-13T14:05:00+00:00", "2023-08-13T16:05:00+02:00", "2023-08-13T09:05:00-05:00", "2023-08-13T14:05:00Z"],
)
def test_post_times_with_any_offset_become_utc(stamp: str) -> None:
    (report,) = reports(page(message(1, "Zunami Protocol was exploited for ~$2.1M", stamp)))
    assert report.reported_at == datetime(2023, 8, 13, 14, 5, tzinfo=UTC)


def test_posts_missing_text_time_or_id_give_no_report_but_one_odd_post_costs_only_itself() -> None:
    body = page(
        message(1, "Zunami Protocol was exploited for ~$2.1M"),
        message(2, None, extra='<a class="tgme_widget_message_photo_wrap" href="https://t.me/investigations/2"></a>'),
        message(3, "Sturdy Finance was exploited for $800K", when=None),
        message(4, "Conic Finance was exploited for $3.2M").replace('data-post="investigations/4"', ""),
        message(5, "Exactly Protocol was exploited for $7.3M", when="not a time"),
        message(6, "Conic Finance was exploited for $3.2M on Ethereum"),
    )
    assert [p.number for p in parse_posts(Document("u", 200, body))] == [1, 2, 5, 6]  # 2: media only, no text
    assert [r.source_ref for r in reports(body)] == ["investigations/1", "investigations/6"]


def test_empty_channels_yield_nothing_and_other_pages_are_refused() -> None:
    assert reports(page()) == []
    for body in (b"", b"<html><body><div class='tgme_page'>Channel not found</div></body></html>", b"{}"):
        with pytest.raises(ParseError):
            reports(body)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as client:
        yield client


async def fetch(url: str, http: httpx.AsyncClient, known: frozenset[str] = frozenset()) -> list[Report]:
    fetcher = Fetcher(http, FetchPolicy(timeout=5, retries=0))
    return await fetch_reports(REGISTRY["telegram_zachxbt"], SourceContext(fetcher, url, None, known))


def _before(path: str) -> int | None:
    found = re.search(r"before=(\d+)", path)
    return int(found.group(1)) if found else None


def _older(path: str, _: bytes) -> bytes:
    """Two posts below `before` (or below 100): an endless channel."""
    top = _before(path) or 100
    return page(*(message(n, f"Project{n} was exploited for $1M") for n in (top - 2, top - 1)))


async def test_paging_follows_before_down_to_the_cap(http: httpx.AsyncClient) -> None:
    with paged_api(_older, "/s/investigations") as api:
        found = await fetch(api.url, http)
    assert [_before(p) for p in api.paths()] == [None, 98, 96]
    assert len(api.paths()) == _telegram.MAX_PAGES and len(found) == 6


async def test_paging_stops_at_a_stored_post(http: httpx.AsyncClient) -> None:
    with paged_api(_older, "/s/investigations") as api:
        await fetch(api.url, http, known=frozenset({"investigations/97"}))
    assert [_before(p) for p in api.paths()] == [None, 98]  # page 2 reaches post 96 <= 97


async def test_a_server_ignoring_before_is_not_read_forever(http: httpx.AsyncClient) -> None:
    with paged_api(lambda path, _: page(message(7, "Zunami Protocol was exploited for ~$2.1M")), "/s/x") as api:
        found = await fetch(api.url, http)
    assert [_before(p) for p in api.paths()] == [None, 7] and len(found) == 1


async def test_a_page_of_media_only_posts_does_not_end_paging(http: httpx.AsyncClient) -> None:
    def answer(path: str, _: bytes) -> bytes:
        if _before(path) is None:
            return page(message(50, None), message(51, None))  # photos without captions
        return page(message(49, "Zunami Protocol was exploited for ~$2.1M"))

    with paged_api(answer, "/s/investigations") as api:
        found = await fetch(api.url, http)
    assert [_before(p) for p in api.paths()][:2] == [None, 50]
    assert [r.source_ref for r in found] == ["investigations/49"]


def test_fixture_pages_hold_their_awkward_cases() -> None:
    """What the hand-built preview pages hold (see their README.md)."""
    zach = (FIXTURES / "telegram_zachxbt" / "index.html").read_bytes()
    posts = {p.number: p for p in parse_posts(Document("u", 200, zach))}
    assert "Update: the Bybit exploiter" in posts[205].text and "hacked for $1.46B+" not in posts[205].text  # reply
    assert posts[203].text.splitlines()[0] == "Bybit was hacked for $1.46B+ from an Ethereum cold wallet."  # <br/>
    defimon = (FIXTURES / "telegram_defimon" / "index.html").read_bytes()
    found = {r.protocol: r for r in page_reports("telegram_defimon", Document("u", 200, defimon))}
    assert found["Cetus"].tx_hash is None and found["Cetus"].chain == "sui"  # a 64-hex Sui address is no tx
