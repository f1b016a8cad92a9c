"""JSON and GraphQL API sources (Reddit listing, DOJ News API, De.Fi REKT, Forta alerts, Chainabuse reports):
the awkward cases of each documented answer — entities, missing fields, times and their zones, empty
answers, one odd item among good ones, and Forta's cursor paging (played by a loopback API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from kamiyo.ingest.runner import fetch_reports
from kamiyo.sources import REGISTRY, chainabuse, doj, forta, reddit_defi_security
from kamiyo.sources.base import Document, ParseError, Report
from kamiyo.sources.defi_rekt import parse_rekts
from kamiyo.sources.forta import parse_alerts
from kamiyo.sources.http import Fetcher, FetchPolicy, SourceContext, new_client
from tests.sources.fixture_server import FIXTURES, fixture_server
from tests.sources.paged_server import paged_api

TX = "0x2aec4fdb2a09ad4269a410f2c770737626fb62c54e0fa8ac25e8582d4b690cca"
AUG_13 = datetime(2023, 8, 13, 14, 5, tzinfo=UTC)


def doc(value: Any) -> Document:
    return Document("https://example.org/api", 200, orjson.dumps(value))


def fixture_json(name: str, path: str) -> Any:
    return orjson.loads((FIXTURES / name / path).read_bytes())


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as client:
        yield client


# --- Reddit listing -------------------------------------------------------------------------------


def post(name: str = "t3_15q1abc", **fields: Any) -> dict[str, Any]:
    data = {
        "name": name,
        "title": "Zunami Protocol exploited for $2.1M on Ethereum",
        "selftext": "",
        "created_utc": 1691935500.0,
        "permalink": f"/r/defi/comments/{name[3:]}/zunami/",
        "url": "",
    }
    return {"kind": "t3", "data": {**data, **fields}}


def listing(*children: Any, after: str | None = None) -> Document:
    return doc({"kind": "Listing", "data": {"after": after, "dist": len(children), "children": list(children)}})


def test_reddit_reads_raw_json_text_markdown_links_and_unix_float_times() -> None:
    assert "raw_json=1" in REGISTRY["reddit_defi_security"].endpoint  # `&`, `<`, `>` come unescaped
    selftext = f"Curve & Zunami: the pool was drained. [attack tx](https://etherscan.io/tx/{TX}) <- see"
    (report,) = reddit_defi_security.parse(listing(post(selftext=selftext)))
    assert report.reported_at == AUG_13 and report.tx_hash == TX
    assert "Curve & Zunami" in (report.description or "")


def test_reddit_drops_comments_stickies_and_posts_missing_fields_one_at_a_time() -> None:
    no_time = post("t3_a")
    del no_time["data"]["created_utc"]
    no_permalink = post("t3_b")
    del no_permalink["data"]["permalink"]
    found = reddit_defi_security.parse(
        listing(
            {"kind": "t1", "data": post("t1_c")["data"]},  # a comment
            post("t3_d", stickied=True),
            no_time,
            no_permalink,
            "not a thing",
            post("t3_e", created_utc="yesterday"),
            post("t3_f", url="https://www.reddit.com/gallery/15q1abc"),
        )
    )
    assert [r.source_ref for r in found] == ["t3_f"]
    assert found[0].references == ()  # a link back to Reddit is not a reference


def test_reddit_empty_listing_and_other_answers() -> None:
    assert reddit_defi_security.parse(listing(after=None)) == []
    for value in ({"kind": "Listing"}, [], {"error": 429, "message": "Too Many Requests"}):
        with pytest.raises(ParseError):
            reddit_defi_security.parse(doc(value))


# --- DOJ News API ---------------------------------------------------------------------------------


def release(**fields: Any) -> dict[str, Any]:
    base = {
        "uuid": "0b9a5e52-1111-4c2b-9a7e-000000000001",
        "title": "Hacker Charged With Exploiting Zunami Protocol",
        "url": "https://www.justice.gov/opa/pr/zunami",
        "date": "1736370000",
        "body": "<p>On August 13, 2023, the defendant drained about $2.1 million in cryptocurrency.</p>",
    }
    return {**base, **fields}


def test_doj_decodes_entities_in_titles_and_bodies() -> None:
    title = "Hacker Charged With Exploiting Zunami Protocol&#039;s Pools &amp; Stealing Crypto"
    body = "<p>On August 13, 2023, the defendant&rsquo;s attack drained about $2.1&nbsp;million in cryptocurrency.</p>"
    (report,) = doj.parse(doc({"results": [release(title=title, body=body)]}))
    assert report.raw["title"] == "Hacker Charged With Exploiting Zunami Protocol's Pools & Stealing Crypto"
    assert report.protocol == "Zunami Protocol" and report.amount_usd == 2.1e6
    assert "defendant’s attack" in (report.description or "")
    assert report.timestamp == datetime(2023, 8, 13, tzinfo=UTC)  # the stated date, not the release
    assert report.reported_at == datetime(2025, 1, 8, 21, tzinfo=UTC)  # unix seconds as a string


def test_doj_missing_fields() -> None:
    found = doj.parse(
        doc(
            {
                "results": [
                    release(date=None),
                    release(uuid=None, url=None),
                    release(uuid=None),
                    release(
                        body=None,
                        teaser="<p>Charged with exploiting Zunami Protocol for cryptocurrency.</p>",
                        uuid="u-4",
                    ),
                    {"uuid": "u-5"},
                ]
            }
        )
    )
    assert [r.source_ref for r in found] == ["https://www.justice.gov/opa/pr/zunami", "u-4"]
    assert found[1].amount_usd is None and found[1].timestamp == found[1].reported_at  # nothing stated


def test_doj_empty_and_other_answers() -> None:
    assert doj.parse(doc({"metadata": {"resultset": {"count": 0}}, "results": []})) == []
    with_bom = Document("u", 200, b"\xef\xbb\xbf" + orjson.dumps({"results": [release()]}))
    assert len(doj.parse(with_bom)) == 1  # a UTF-8 byte order mark (RFC 8259 lets parsers ignore it)
    for value in ({"metadata": {}}, [], {"results": "none"}):
        with pytest.raises(ParseError):
            doj.parse(doc(value))


# --- De.Fi REKT (GraphQL) ---------------------------------------------------------------------------


def rekt(**fields: Any) -> dict[str, Any]:
    base = {
        "id": 3001,
        "projectName": "Zunami Protocol",
        "date": "2023-08-13T00:00:00.000Z",
        "fundsLost": 2100000,
        "fundsReturned": None,
        "chaindIds": [1],
        "category": "Exploit",
        "issueType": "Price Manipulation",
    }
    return {**base, **fields}


def test_defi_rekt_missing_and_odd_fields() -> None:
    data = {
        "chains": [{"id": 1, "name": "Ethereum"}],
        "rekts": [
            rekt(id=1, projectName=None),
            rekt(id=2, date=None),
            rekt(id=3, fundsLost="not a number", chaindIds=[999]),
            rekt(id=4, date="2023-08-13T02:00:00+02:00", fundsLost="2100000", fundsReturned=0),
            {"id": 5},
            "odd",
        ],
    }
    found = {r.source_ref: r for r in parse_rekts(data)}
    assert set(found) == {"3", "4"}  # no name, no date, no projectName key: dropped
    assert found["3"].amount_usd is None and found["3"].chain is None  # unknown stays unknown
    assert found["4"].timestamp == datetime(2023, 8, 13, tzinfo=UTC) and found["4"].amount_usd == 2.1e6
    assert found["4"].recovered_usd is None  # 0 returned is no recovery amount
    assert parse_rekts({"rekts": [], "chains": []}) == []
    with pytest.raises(ParseError):
        parse_rekts({"chains": []})


async def test_graphql_errors_without_data_fail_cleanly_and_partial_data_is_read(http: httpx.AsyncClient) -> None:
    fetcher = Fetcher(http, FetchPolicy(timeout=5, retries=0))
    errors = orjson.dumps({"errors": [{"message": "Unauthorized: invalid X-Api-Key"}]})
    with paged_api(lambda path, body: errors) as api, pytest.raises(ParseError, match="Unauthorized"):
        await fetch_reports(REGISTRY["defi_rekt"], SourceContext(fetcher, api.url, "k"))
    partial = orjson.dumps({"data": {"chains": None, "rekts": [rekt()]}, "errors": [{"message": "chains: timeout"}]})
    with paged_api(lambda path, body: partial) as api:
        (report,) = await fetch_reports(REGISTRY["defi_rekt"], SourceContext(fetcher, api.url, "k"))
    assert report.protocol == "Zunami Protocol" and report.chain is None


# --- Forta (GraphQL, cursor paging) -----------------------------------------------------------------


def alert(number: int, **fields: Any) -> dict[str, Any]:
    base = {
        "hash": f"0x{number:064x}",
        "alertId": "ATTACK-DETECTOR-1",
        "name": "Attack detected",
        "description": "0x3b33f2c3e2d4cbc7e7a8f2b2c6e2b9d5a7c8f4e1 is likely involved in an attack",
        "severity": "CRITICAL",
        "createdAt": "2023-08-13T14:20:00.000Z",
        "projects": [{"id": "p", "name": f"P{number}"}],
        "source": {
            "transactionHash": TX,
            "block": {"number": 17900000 + number, "timestamp": "2023-08-13T14:05:00Z", "chainId": 1},
        },
    }
    return {**base, **fields}


def alerts(*items: Any, next_page: bool = False, cursor: Any = None) -> dict[str, Any]:
    return {"alerts": {"pageInfo": {"hasNextPage": next_page, "endCursor": cursor}, "alerts": list(items)}}


def test_forta_field_variants_and_missing_fields() -> None:
    answer = alerts(
        alert(1, severity="high", source={"block": {"chainId": "42161", "timestamp": "2023-08-13T16:05:00+02:00"}}),
        alert(2, projects=[], contracts=[{"address": "0x1", "name": "Zunami: UZD"}], source=None),
        alert(3, createdAt=None, source={"block": {}}),  # no time at all
        alert(4, projects=[{"id": "x", "name": "  "}]),  # no name
        alert(5, severity="INFO"),
        {"alertId": "no hash", "projects": [{"name": "P6"}], "createdAt": "2023-08-13T14:20:00Z", "severity": "HIGH"},
    )
    found = {r.protocol: r for r in parse_alerts(answer)}
    assert set(found) == {"P1", "Zunami: UZD"}
    assert (found["P1"].chain, found["P1"].timestamp, found["P1"].tx_hash) == ("arbitrum", AUG_13, None)
    zunami = found["Zunami: UZD"]  # no block: createdAt stands in, the chain stays unknown
    assert zunami.timestamp == datetime(2023, 8, 13, 14, 20, tzinfo=UTC) and zunami.chain is None
    with pytest.raises(ParseError):
        parse_alerts({"alerts": None})


async def forta_run(api_url: str, http: httpx.AsyncClient, known: frozenset[str] = frozenset()) -> list[Report]:
    fetcher = Fetcher(http, FetchPolicy(timeout=5, retries=0))
    return await fetch_reports(REGISTRY["forta"], SourceContext(fetcher, api_url, "k", known))


def _after(body: bytes) -> Any:
    return orjson.loads(body)["variables"]["input"].get("after")


async def test_forta_follows_end_cursor_to_the_cap(http: httpx.AsyncClient) -> None:
    def endless(path: str, body: bytes) -> bytes:
        number = (_after(body) or {}).get("blockNumber", 0) + 1
        return orjson.dumps(
            {"data": alerts(alert(number), next_page=True, cursor={"alertId": "A", "blockNumber": number})}
        )

    with paged_api(endless) as api:
        found = await forta_run(api.url, http)
    assert [_after(body) for _, _, body in api.requests] == [
        None,
        {"alertId": "A", "blockNumber": 1},
        {"alertId": "A", "blockNumber": 2},
    ]
    assert len(api.requests) == forta.MAX_PAGES and {r.protocol for r in found} == {"P1", "P2", "P3"}


async def test_forta_stops_at_the_last_page_a_repeated_cursor_or_stored_alerts(http: httpx.AsyncClient) -> None:
    last = orjson.dumps({"data": alerts(alert(1), next_page=False, cursor={"alertId": "A", "blockNumber": 1})})
    with paged_api(lambda path, body: last) as api:
        await forta_run(api.url, http)
    assert len(api.requests) == 1

    def stuck(path: str, body: bytes) -> bytes:  # a new alert each time, but the same cursor
        return orjson.dumps({"data": alerts(alert(len(api.requests)), next_page=True, cursor={"alertId": "A"})})

    with paged_api(stuck) as api:
        await forta_run(api.url, http)
    assert len(api.requests) == 2

    def old(path: str, body: bytes) -> bytes:  # hasNextPage forever, but the alerts are stored already
        number = (_after(body) or {}).get("blockNumber", 0) + 1
        return orjson.dumps({"data": alerts(alert(7), next_page=True, cursor={"alertId": "A", "blockNumber": number})})

    with paged_api(old) as api:
        await forta_run(api.url, http, known=frozenset({f"0x{7:064x}"}))
    assert len(api.requests) == 1


# --- Chainabuse reports -------------------------------------------------------------------------------


def abuse(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "r-1",
        "scamCategory": "CONTRACT_EXPLOIT",
        "createdAt": "2023-08-13T14:05:00.000Z",
        "description": "Zunami Protocol was exploited on Ethereum for about $2.1M.",
        "addresses": [{"address": "0x3b33f2c3e2d4cbc7e7a8f2b2c6e2b9d5a7c8f4e1", "chain": "ETH"}],
        "transactionHashes": [{"transactionHash": TX, "chain": "ETH"}],
        "losses": [],
    }
    return {**base, **fields}


def test_chainabuse_field_variants_and_missing_fields() -> None:
    items = [
        abuse(
            id="a",
            createdAt="2023-08-13T16:05:00+02:00",
            losses=[
                {"asset": "USDT", "amount": "2100000"},
                {"asset": "ETH", "amount": 1000},
                {"asset": "USD", "amount": "n/a"},
            ],
        ),
        abuse(id="b", createdAt=None),
        abuse(id="c", description=None),
        abuse(id="d", addresses=None, transactionHashes=[{"transactionHash": "0xnothex", "chain": "ETH"}], losses=None),
        {"scamCategory": "CONTRACT_EXPLOIT", "description": "Zunami Protocol was exploited"},
        "odd",
    ]
    found = {r.source_ref: r for r in chainabuse.parse(doc({"reports": items}))}
    assert set(found) == {"a", "d"}  # no time, no description, no id: dropped
    assert found["a"].timestamp == AUG_13 and found["a"].amount_usd == 2.1e6  # USDT at par, ETH not priced here
    assert found["d"].tx_hash is None and found["d"].attacker_address is None
    assert found["d"].amount_usd == 2.1e6  # stated in the description
    assert chainabuse.parse(doc([])) == [] and chainabuse.parse(doc({"reports": []})) == []
    with pytest.raises(ParseError):
        chainabuse.parse(doc({"reports": None}))


def test_api_fixtures_hold_their_awkward_cases() -> None:
    """What the hand-built API answers hold (see their README.md)."""
    listing_json = fixture_json("reddit_defi_security", "new.json")
    assert any(c["data"]["stickied"] for c in listing_json["data"]["children"])
    assert {r.source_ref for r in reddit_defi_security.parse(doc(listing_json))} == {"t3_1lvz9qa", "t3_1g5u3dd"}
    forta_answer = fixture_json("forta", "graphql")["data"]
    assert {r.protocol for r in parse_alerts(forta_answer)} == {"Bybit", "Zoth", "Abracadabra"}  # LOW / unnamed out
    rekts = fixture_json("defi_rekt", "graphql")["data"]
    assert "2551" not in {r.source_ref for r in parse_rekts(rekts)}  # empty projectName


async def test_forta_fixture_mirror_repeating_its_cursor_is_read_twice(http: httpx.AsyncClient) -> None:
    """The static fixture says hasNextPage and answers every page alike: the repeated cursor ends paging."""
    with fixture_server() as server:
        found = await forta_run(server.url("forta"), http)
        gets = [path for method, path, _ in server.requests if method == "GET"]
    assert len(gets) == 2 and {r.protocol for r in found} == {"Bybit", "Zoth", "Abracadabra"}
