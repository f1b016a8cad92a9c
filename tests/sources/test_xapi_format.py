"""The X API v2 recent-search family (`kamiyo.sources._xapi`, the five x_* accounts): awkward cases of the answer.

The answer shape is `GET /2/tweets/search/recent` (docs.x.com): `data[]`, `meta.next_token`; `text`
is HTML-escaped by the API (`&amp;`, `&lt;`, `&gt;`). Paging is played by a loopback API.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from kamiyo.ingest.runner import fetch_reports
from kamiyo.sources import REGISTRY, _xapi
from kamiyo.sources._xapi import parse_tweets
from kamiyo.sources.base import Document, ParseError, Report
from kamiyo.sources.http import Fetcher, FetchPolicy, SourceContext, new_client
from tests.sources.fixture_server import FIXTURES, fixture_server
from tests.sources.paged_server import paged_api

ALERT = "#PeckShieldAlert #Zunami has been exploited, ~$2.1M lost"


def answer(*tweets: dict[str, Any], **meta: Any) -> Document:
    body: dict[str, Any] = {"meta": {"result_count": len(tweets), **meta}}
    if tweets:
        body["data"] = list(tweets)
    return Document("https://api.x.com/2/tweets/search/recent", 200, orjson.dumps(body))


def tweet(ident: str = "1690000000000000001", text: str = ALERT, **fields: Any) -> dict[str, Any]:
    return {"id": ident, "text": text, "created_at": "2023-08-13T14:05:00.000Z", **fields}


def parse(document: Document) -> list[Report]:
    return parse_tweets("x_peckshield", "PeckShieldAlert", document)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as client:
        yield client


def test_html_escaped_text_is_unescaped() -> None:
    text = "#PeckShieldAlert #Zunami has been exploited, ~$2.1M lost. It took &lt;3 min &amp; &gt;1,000 ETH"
    (report,) = parse(answer(tweet(text=text)))
    assert report.protocol == "Zunami" and report.amount_usd == 2.1e6
    assert "It took <3 min & >1,000 ETH" in (report.description or "")
    assert "&amp;" not in (report.description or "")


def test_long_posts_use_note_tweet_and_links_fall_back_to_the_short_url() -> None:
    note = {"text": ALERT + "\n\nRoot cause: a donation attack. Exploiter: 0x8a5a4f5e3f0bd0ba64e5b2b48e0a4a3f94e3b8a1"}
    short = {"url": "https://etherscan.io/tx/0x2aec4fdb2a09ad4269a410f2c770737626fb62c54e0fa8ac25e8582d4b690cca"}
    (report,) = parse(answer(tweet(note_tweet=note, entities={"urls": [short]})))
    assert report.attacker_address == "0x8a5a4f5e3f0bd0ba64e5b2b48e0a4a3f94e3b8a1"  # only in the note
    assert report.tx_hash == "0x2aec4fdb2a09ad4269a410f2c770737626fb62c54e0fa8ac25e8582d4b690cca"


@pytest.mark.parametrize(
    "stamp", ["2023-08-13T14:05:00.000Z", "2023-08-13T14:05:00Z", "2023-08-13T16:05:00+02:00", "1691935500"]
)
def test_created_at_in_any_iso_form_becomes_utc(stamp: str) -> None:
    (report,) = parse(answer(tweet(created_at=stamp)))
    assert report.reported_at == datetime(2023, 8, 13, 14, 5, tzinfo=UTC)


def test_missing_fields_cost_only_their_post() -> None:
    no_time = {"id": "2", "text": ALERT}
    no_id = {"text": ALERT, "created_at": "2023-08-13T14:05:00.000Z"}
    no_text = {"id": "3", "created_at": "2023-08-13T14:05:00.000Z"}
    odd = ["not a post", None, {"id": "4", "text": ALERT, "created_at": "soon"}]
    found = parse(answer(no_time, no_id, no_text, *odd, tweet(), entities=None))  # type: ignore[arg-type]
    assert [r.source_ref for r in found] == ["1690000000000000001"]
    assert found[0].references == ()  # no entities: no links, nothing invented


def test_no_new_posts_and_partial_errors_and_error_answers() -> None:
    assert parse(answer()) == []  # result_count 0: `data` is absent
    partial = orjson.dumps({"data": [tweet()], "errors": [{"title": "Not Found Error"}], "meta": {"result_count": 1}})
    assert len(parse(Document("u", 200, partial))) == 1
    for body in (b'{"errors": [{"message": "Invalid since_id"}], "title": "Invalid Request"}', b"[]", b"<html>"):
        with pytest.raises(ParseError):
            parse(Document("u", 200, body))


async def fetch(url: str, http: httpx.AsyncClient, known: frozenset[str] = frozenset()) -> list[Report]:
    fetcher = Fetcher(http, FetchPolicy(timeout=5, retries=0))
    return await fetch_reports(REGISTRY["x_peckshield"], SourceContext(fetcher, url, "k", known))


def _token(path: str) -> str | None:
    return httpx.URL(path).params.get("next_token")


async def test_next_token_pages_are_followed_up_to_the_cap(http: httpx.AsyncClient) -> None:
    def endless(path: str, _: bytes) -> bytes:
        page = int(_token(path) or "0")
        post = tweet(str(1690000000000000100 - page), f"#PeckShieldAlert #Project{page} has been exploited, ~$1M lost")
        return orjson.dumps({"data": [post], "meta": {"result_count": 1, "next_token": str(page + 1)}})

    with paged_api(endless) as api:
        found = await fetch(api.url, http)
    assert [_token(p) for p in api.paths()] == [None, "1", "2"]  # MAX_PAGES, though every page has a token
    assert len(api.paths()) == _xapi.MAX_PAGES
    assert {r.protocol for r in found} == {"Project0", "Project1", "Project2"}


async def test_a_repeated_token_or_none_ends_paging(http: httpx.AsyncClient) -> None:
    def stuck(path: str, _: bytes) -> bytes:  # a server that hands out the same token again
        return orjson.dumps({"data": [tweet()], "meta": {"result_count": 1, "next_token": "same"}})

    with paged_api(stuck) as api:
        found = await fetch(api.url, http)
    assert [_token(p) for p in api.paths()] == [None, "same"] and len(found) == 1

    def last(path: str, _: bytes) -> bytes:
        return orjson.dumps({"meta": {"result_count": 0}})

    with paged_api(last) as api:
        assert await fetch(api.url, http, known=frozenset({"1690000000000000001"})) == []
    assert len(api.paths()) == 1
    query = httpx.URL(api.paths()[0]).params
    assert query["since_id"] == "1690000000000000001" and json.dumps(query.get("next_token")) == "null"


def test_each_x_fixture_holds_its_awkward_case() -> None:
    """What the hand-built x_* answers add (see their README.md); paging of x_peckshield is in the contract run."""

    def of(name: str, handle: str) -> dict[str, Report]:
        body = (FIXTURES / name / "search").read_bytes()
        return {r.protocol: r for r in parse_tweets(name, handle, Document("u", 200, body))}

    assert "ETH & stETH drained" in (of("x_metatrust", "MetaTrustAlert")["Bybit"].description or "")
    assert "Zunami" not in of("x_tenarmor", "TenArmor")  # an alert without created_at: dropped
    peck = orjson.loads((FIXTURES / "x_peckshield" / "search").read_bytes())
    assert peck["meta"]["next_token"] and set(of("x_peckshield", "PeckShieldAlert")) == {"KiloEx", "Abracadabra"}


async def test_a_server_ignoring_next_token_is_read_twice_not_forever(http: httpx.AsyncClient) -> None:
    fetcher = Fetcher(http, FetchPolicy(timeout=5, retries=0))
    with fixture_server() as server:
        context = SourceContext(fetcher, server.url("x_peckshield"), "k")
        found = await fetch_reports(REGISTRY["x_peckshield"], context)
        paths = [path for _, path, _ in server.requests]
    assert len(paths) == 2 and "next_token=b26v89c19" in paths[1]  # page 2 repeats page 1's token: stop
    assert {r.protocol for r in found} == {"KiloEx", "Abracadabra"}
    assert [("next_token" in url) for url in fetcher.seen_validators] == [False]  # only page 1 is conditional
