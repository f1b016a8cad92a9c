"""Keyed API sources (X, De.Fi REKT, Forta, Chainabuse): facts on their fixtures, the request they send
(key header, GraphQL POST, since_id), and how they show up in /sources until the key is set."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from kamiyo.ingest.runner import fetch_reports
from kamiyo.sources import REGISTRY
from kamiyo.sources.base import Report
from kamiyo.sources.http import Fetcher, FetchError, FetchPolicy, SourceContext
from tests.sources.fixture_server import FIXTURES, FixtureServer
from tests.support.app import make_client, make_settings
from tests.support.services import http_server

KEYED = {"x_peckshield", "x_certik", "x_phalcon", "x_tenarmor", "x_metatrust", "defi_rekt", "forta", "chainabuse"}


async def fetch(
    name: str, url: str, http: httpx.AsyncClient, key: str | None = "k", known: frozenset[str] = frozenset()
):
    fetcher = Fetcher(http, FetchPolicy(timeout=5, retries=0))
    return await fetch_reports(REGISTRY[name], SourceContext(fetcher, url, key, known))


def by_protocol(reports: list[Report]) -> dict[str, Report]:
    return {r.protocol: r for r in reports}


class Recorder:
    """A loopback API that records each request and answers with a fixture (POST included)."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body, self.status = body, status
        self.seen: list[dict[str, Any]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                      "body": self.rfile.read(length) if length else b""})  # fmt: skip
                self.send_response(recorder.status)
                self.send_header("Content-Length", str(len(recorder.body)))
                self.end_headers()
                self.wfile.write(recorder.body)

            do_GET = do_POST = _answer

        return Handler


@pytest.fixture
def recorder_url() -> Iterator[Any]:
    with contextlib.ExitStack() as servers:

        def start(recorder: Recorder) -> str:
            return servers.enter_context(http_server(recorder.handler())) + "/api"

        yield start


def test_every_keyed_source_declares_its_variable() -> None:
    assert {n for n, s in REGISTRY.items() if s.needs_key} >= KEYED
    assert {REGISTRY[n].needs_key for n in KEYED} == {
        "X_BEARER_TOKEN",
        "DEFI_API_KEY",
        "FORTA_API_KEY",
        "CHAINABUSE_API_KEY",
    }


async def test_x_accounts_keep_alerts_and_drop_other_posts(server: FixtureServer, http: httpx.AsyncClient) -> None:
    peck = by_protocol(await fetch("x_peckshield", server.url("x_peckshield"), http))
    assert set(peck) == {"KiloEx", "Abracadabra"}
    kiloex = peck["KiloEx"]
    assert kiloex.source_ref == "1911757813044715898"
    assert kiloex.url == "https://x.com/PeckShieldAlert/status/1911757813044715898"
    assert kiloex.reported_at == datetime(2025, 4, 14, 12, 55, 1, tzinfo=UTC)
    assert (kiloex.tx_hash, kiloex.chain) == (
        "0x6b378c84aa57097fb5845f285476e33d6832b8090d36d02fe0e1aed909228edd",
        "base",
    )
    phalcon = by_protocol(await fetch("x_phalcon", server.url("x_phalcon"), http))
    assert set(phalcon) == {"KiloEx", "GMX V1"}  # "@KiloEx_perp" and "@GMX_IO V1" read as names
    assert phalcon["GMX V1"].attacker_address == "0xdf3340a436c27655ba62f8281565c9925c3a5221"
    assert set(by_protocol(await fetch("x_certik", server.url("x_certik"), http))) == {"zkLend", "Cetus"}
    assert set(by_protocol(await fetch("x_tenarmor", server.url("x_tenarmor"), http))) == {"Zoth", "Cork"}
    assert set(by_protocol(await fetch("x_metatrust", server.url("x_metatrust"), http))) == {"Cork Protocol", "Bybit"}


async def test_x_search_sends_the_bearer_token_and_only_asks_for_new_posts(
    http: httpx.AsyncClient, recorder_url: Any
) -> None:
    recorder = Recorder((FIXTURES / "x_certik" / "search").read_bytes())
    url = recorder_url(recorder)
    await fetch("x_certik", url, http, key="secret-token", known=frozenset({"1889640000000000001", "12"}))
    request = recorder.seen[0]
    assert request["method"] == "GET" and request["headers"]["Authorization"] == "Bearer secret-token"
    query = httpx.URL(request["path"]).params
    assert query["query"] == "from:CertiKAlert -is:retweet -is:reply" and query["since_id"] == "1889640000000000001"
    assert "created_at" in query["tweet.fields"]


async def test_a_refused_key_fails_cleanly_without_showing_it(http: httpx.AsyncClient, recorder_url: Any) -> None:
    url = recorder_url(Recorder(b'{"title": "Unauthorized"}', status=401))
    with pytest.raises(FetchError) as failure:
        await fetch("x_peckshield", url, http, key="super-secret")
    assert failure.value.status == 401 and "refused" in str(failure.value)
    assert "super-secret" not in str(failure.value)


async def test_defi_rekt_posts_graphql_with_its_key_and_maps_chain_ids(
    http: httpx.AsyncClient, recorder_url: Any
) -> None:
    recorder = Recorder((FIXTURES / "defi_rekt" / "graphql").read_bytes())
    found = by_protocol(await fetch("defi_rekt", recorder_url(recorder), http, key="defi-key"))
    request = recorder.seen[0]
    assert request["method"] == "POST" and request["headers"]["X-Api-Key"] == "defi-key"
    body = json.loads(request["body"])
    assert "rekts(" in body["query"] and "chains { id name }" in body["query"]
    assert set(found) == {"Bybit", "KiloEx", "Zoth"}  # the unnamed honeypot is skipped
    assert (found["Bybit"].chain, found["Bybit"].amount_usd, found["Bybit"].category) == (
        "ethereum",
        1.46e9,
        "access_control",
    )
    assert found["KiloEx"].chain == "multichain" and found["KiloEx"].recovered_usd == 7.5e6
    assert found["Zoth"].category == "private_key" and found["Zoth"].source_ref == "2548"
    assert found["Zoth"].timestamp == datetime(2025, 3, 21, tzinfo=UTC) and found["Zoth"].reported_at is None


async def test_forta_keeps_named_high_alerts_with_block_time(http: httpx.AsyncClient, recorder_url: Any) -> None:
    recorder = Recorder((FIXTURES / "forta" / "graphql").read_bytes())
    found = by_protocol(await fetch("forta", recorder_url(recorder), http, key="forta-key"))
    request = recorder.seen[0]
    assert request["method"] == "POST" and request["headers"]["Authorization"] == "Bearer forta-key"
    assert json.loads(request["body"])["variables"]["input"]["severities"] == ["CRITICAL", "HIGH"]
    assert set(found) == {"Bybit", "Zoth", "Abracadabra"}  # no project name, or LOW: dropped
    bybit = found["Bybit"]
    assert bybit.timestamp == datetime(2025, 2, 21, 14, 13, 35, tzinfo=UTC)
    assert bybit.reported_at is not None and bybit.reported_at > bybit.timestamp
    assert bybit.attacker_address == "0x47666Fab8bd0Ac7003bce3f5C3585383F09486E2"
    assert bybit.tx_hash == "0x46deef0f52e3a983b67abf4714448a41dd7ffd6d32d32da69d62081c68ad7882"
    assert found["Abracadabra"].chain == "arbitrum" and found["Abracadabra"].category == "flash_loan"


async def test_chainabuse_uses_basic_auth_and_keeps_named_exploits(http: httpx.AsyncClient, recorder_url: Any) -> None:
    recorder = Recorder((FIXTURES / "chainabuse" / "reports").read_bytes())
    found = by_protocol(await fetch("chainabuse", recorder_url(recorder), http, key="ca-key"))
    request = recorder.seen[0]
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"ca-key:ca-key").decode()
    assert httpx.URL(request["path"]).params["category"] == "CONTRACT_EXPLOIT"
    assert set(found) == {"Abracadabra", "Infini"}  # no project named, or a rug pull: dropped
    infini = found["Infini"]
    assert (infini.chain, infini.amount_usd) == ("ethereum", 49.5e6)  # USDC counted at par
    assert infini.attacker_address == "0xfcc8ad911976d752890f2140d9f4edbb2776c0f6"
    assert found["Abracadabra"].tx_hash == "0xa7f2a2a84a8e0e1a0b2d2f6b1a6e3c2d8f3b5a2c1e9d8f7a6b5c4d3e2f1a0b9c"


async def test_sources_list_shows_keyed_sources_off_until_the_key_is_set(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("X_BEARER_TOKEN", "DEFI_API_KEY", "FORTA_API_KEY", "CHAINABUSE_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FORTA_API_KEY", "set")
    async for client in make_client(make_settings(empty_db_url)):
        listed = {s["name"]: s for s in (await client.get("/sources")).json()}
    assert listed["defi_rekt"]["enabled"] is False and listed["defi_rekt"]["disabled_reason"] == "needs DEFI_API_KEY"
    assert listed["x_peckshield"]["disabled_reason"] == "needs X_BEARER_TOKEN"
    assert listed["forta"]["enabled"] is True and listed["cointelegraph"]["enabled"] is True
    assert len(listed) >= 21
