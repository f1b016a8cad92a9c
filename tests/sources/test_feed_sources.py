"""The classified news/social/court sources on their fixtures: which items are kept and the facts read.

Each source runs through its real fetch code against the fixture server (tests/sources/fixture_server.py).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from kamiyo.db import Database
from kamiyo.ingest.runner import IngestOptions, fetch_reports
from kamiyo.ingest.scheduler import run_round
from kamiyo.sources import REGISTRY
from kamiyo.sources.base import ParseError, Report
from kamiyo.sources.http import Fetcher, FetchPolicy, SourceContext
from tests.sources.fixture_server import FixtureServer

FEEDS = sorted(name for name, source in REGISTRY.items() if source.kind == "rss")
KILOEX_TX = "0x6b378c84aa57097fb5845f285476e33d6832b8090d36d02fe0e1aed909228edd"
BYBIT_ATTACKER = "0x47666Fab8bd0Ac7003bce3f5C3585383F09486E2"


async def reports_of(
    name: str, server: FixtureServer, http: httpx.AsyncClient, known: frozenset[str] = frozenset()
) -> dict[str, Report]:
    fetcher = Fetcher(http, FetchPolicy(timeout=5, retries=0))
    found = await fetch_reports(REGISTRY[name], SourceContext(fetcher, server.url(name), "test-key", known))
    return {r.protocol: r for r in found}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


async def test_cointelegraph_keeps_incidents_and_drops_prices_stats_and_updates(
    server: FixtureServer, http: httpx.AsyncClient
) -> None:
    found = await reports_of("cointelegraph", server, http)
    assert set(found) == {"Cetus Protocol", "KiloEx"}
    cetus, kiloex = found["Cetus Protocol"], found["KiloEx"]
    assert (cetus.chain, cetus.amount_usd, cetus.amount_text) == ("sui", 223e6, "$223M")
    assert cetus.reported_at == cetus.timestamp == utc(2025, 5, 22, 10, 4, 5)  # pubDate +0100 in UTC
    assert cetus.source_ref == cetus.url == "https://cointelegraph.com/news/cetus-protocol-exploited-223m-sui"
    assert (kiloex.chain, kiloex.tx_hash, kiloex.category) == ("base", KILOEX_TX, "price_oracle")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("theblock", {"Bybit": ("ethereum", 1.4e9), "Infini": ("ethereum", 49.5e6), "Abracadabra": ("arbitrum", 13e6)}),
        (
            "cryptoslate",
            {"zkLend": ("starknet", 9.5e6), "Loopscale": ("solana", 5.8e6), "Cork Protocol": ("ethereum", 12e6)},
        ),
        ("decrypt", {"GMX V1": ("arbitrum", 42e6), "BigONE Exchange": (None, 27e6), "CoinDCX": (None, 44e6)}),
        ("chainalysis_blog", {"Bybit": ("ethereum", 1.46e9), "Nobitex": (None, 90e6)}),
        ("trm_blog", {"UPCX": (None, 70e6), "Radiant Capital": ("arbitrum", 50e6)}),
    ],
)
async def test_news_feeds_keep_only_named_incidents(
    name: str, expected: dict[str, tuple[str | None, float]], server: FixtureServer, http: httpx.AsyncClient
) -> None:
    found = await reports_of(name, server, http)
    assert {p: (r.chain, r.amount_usd) for p, r in found.items()} == expected
    assert all(r.reported_at is not None and r.url and r.url.startswith("https://") for r in found.values())


async def test_guids_are_the_reference_and_categories_come_from_strong_words(
    server: FixtureServer, http: httpx.AsyncClient
) -> None:
    slate = await reports_of("cryptoslate", server, http)
    assert slate["zkLend"].source_ref == "https://cryptoslate.com/?p=571203"
    assert slate["zkLend"].category == "rounding"  # not "phishing" from a later sentence
    block = await reports_of("theblock", server, http)
    assert block["Bybit"].attacker_address == BYBIT_ATTACKER
    trm = await reports_of("trm_blog", server, http)
    assert trm["UPCX"].category == "private_key"


async def test_immunefi_hack_analyses_take_the_stated_incident_date(
    server: FixtureServer, http: httpx.AsyncClient
) -> None:
    found = await reports_of("immunefi", server, http)
    assert set(found) == {"Euler Finance", "Platypus Finance"}
    euler = found["Euler Finance"]
    assert euler.timestamp == utc(2023, 3, 13) and euler.reported_at == utc(2023, 4, 6, 15, 32, 11)
    assert euler.tx_hash == "0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d"
    assert euler.source_ref == "https://medium.com/p/529c7c2ba3dc"
    assert found["Platypus Finance"].category == "flash_loan"


async def test_telegram_pages_back_and_keeps_only_incident_posts(
    server: FixtureServer, http: httpx.AsyncClient
) -> None:
    found = await reports_of("telegram_zachxbt", server, http)
    assert set(found) == {"Bybit", "Loopscale", "Phemex"}  # the reminder and the Bybit follow-up are dropped
    bybit = found["Bybit"]
    assert bybit.source_ref == "investigations/203" and bybit.url == "https://t.me/investigations/203"
    assert bybit.reported_at == utc(2025, 2, 21, 15, 42, 10)
    assert (bybit.amount_usd, bybit.attacker_address, bybit.chain) == (1.46e9, BYBIT_ATTACKER, "ethereum")
    assert found["Phemex"].source_ref == "investigations/199"  # from page 2 (?before=203)
    assert any("before=203" in path for _, path, _ in server.requests)


async def test_telegram_stops_paging_at_posts_already_stored(server: FixtureServer, http: httpx.AsyncClient) -> None:
    before = server.hits("telegram_zachxbt")
    found = await reports_of("telegram_zachxbt", server, http, known=frozenset({"investigations/206"}))
    assert server.hits("telegram_zachxbt") - before == 1
    assert "Phemex" not in found


async def test_alert_bot_posts_are_read_from_their_labelled_lines(
    server: FixtureServer, http: httpx.AsyncClient
) -> None:
    found = await reports_of("telegram_defimon", server, http)
    assert set(found) == {"KiloEx", "Cetus", "Cork Protocol"}
    kiloex = found["KiloEx"]
    assert (kiloex.chain, kiloex.amount_usd, kiloex.tx_hash) == ("base", 7.5e6, KILOEX_TX)
    assert found["Cetus"].tx_hash is None  # a Sui address is not mistaken for a transaction


async def test_reddit_keeps_named_incidents_with_post_time(server: FixtureServer, http: httpx.AsyncClient) -> None:
    found = await reports_of("reddit_defi_security", server, http)
    assert set(found) == {"GMX V1", "Radiant Capital"}
    gmx = found["GMX V1"]
    assert gmx.source_ref == "t3_1lvz9qa" and gmx.reported_at == utc(2025, 7, 9, 14, 30)
    assert gmx.url is not None and gmx.url.startswith("https://www.reddit.com/r/defi/comments/1lvz9qa/")
    assert gmx.tx_hash == "0x03182d3f0956a91c4e4c8f225bbc7975f9434fab042228c7acdc5ec9a32626ef"


async def test_doj_releases_date_the_incident_not_the_charge(server: FixtureServer, http: httpx.AsyncClient) -> None:
    found = await reports_of("doj", server, http)
    assert set(found) == {"Mango Markets", "Harmony Horizon Bridge"}  # no health-care fraud, no unnamed "Blockchain"
    mango = found["Mango Markets"]
    assert mango.timestamp == utc(2022, 10, 11) and mango.reported_at == utc(2025, 1, 8, 21)
    assert (mango.chain, mango.amount_usd) == ("solana", 110e6)
    assert mango.source_ref == "6c5d8d0f-6a59-4c55-9b0a-0c1d7c2b8e11"
    assert found["Harmony Horizon Bridge"].category == "bridge"


@pytest.mark.parametrize("name", FEEDS)
async def test_an_xml_bomb_in_a_feed_is_refused_fast_not_expanded(
    name: str, server: FixtureServer, http: httpx.AsyncClient
) -> None:
    """Without defusedxml, feedparser's loose pass would read the item with `&lol9;` left in its title."""
    server.modes[name] = "xml_bomb"
    started = time.perf_counter()
    try:
        with pytest.raises(ParseError):
            await reports_of(name, server, http)
    finally:
        server.modes.pop(name)
    assert time.perf_counter() - started < 1.0


async def test_an_xml_bomb_fails_only_that_sources_round(server: FixtureServer, empty_db_url: str) -> None:
    server.modes["cointelegraph"] = "xml_bomb"
    options = IngestOptions(source_urls=server.source_urls("cointelegraph", "theblock"), deadline=5.0)
    db = Database(empty_db_url)
    try:
        bombed, healthy = await run_round(db, options, [REGISTRY["cointelegraph"], REGISTRY["theblock"]])
    finally:
        server.modes.pop("cointelegraph")
        await db.dispose()
    assert bombed.status == "failed" and "EntitiesForbidden" in (bombed.error or "")
    assert healthy.status == "ok" and healthy.items == 3
