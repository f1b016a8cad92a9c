"""Address labels: parsing both feeds, the refresh job against a loopback server, and labelled attackers in the API.

Fixtures (tests/fixtures/enrich/) are built in the documented shapes: `sdn.csv` as OFAC's 12-column
SDN CSV with "Digital Currency Address - <asset> <address>" remarks, `sanctioned_addresses_ETH.json`
as 0xB10C's address list, `all.json` as ScamSniffer's blacklist (with the junk entries it contains).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.enrich.feeds import FEEDS, parse_ofac, parse_scamsniffer
from kamiyo.enrich.labels import Label, replace_feed
from kamiyo.enrich.refresh import refresh_labels
from kamiyo.exploits.evidence_models import AddressLabel
from kamiyo.exploits.labels import labels_for
from kamiyo.exploits.models import Exploit
from kamiyo.sources.base import Document, ParseError
from tests.support.app import make_client, make_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "enrich"
LAZARUS = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"


def document(name: str) -> Document:
    return Document(url=f"file:{name}", status=200, content=(FIXTURES / name).read_bytes())


def test_ofac_csv_gives_one_label_per_address_naming_the_parties() -> None:
    labels = {label.address: label.label for label in parse_ofac(document("sdn.csv"))}
    assert labels[LAZARUS] == "OFAC SDN: LAZARUS GROUP; OFAC SDN: SINBAD.IO"  # listed by both parties
    assert labels["0x722122df12d4e14e13ac3b6895a86e84145b6967"] == "OFAC SDN: TORNADO CASH"  # trailing "." dropped
    assert labels["1AVdaBkxdzHF6yfDGJmpsCkHYYqXakPHPH"] == "OFAC SDN: LAZARUS GROUP"  # Bitcoin keeps its case
    assert "TGeRM2Y8oAWYpcDJYfmnNTkfS4ePnMTPdz" in labels and "bc1qh9n0sh4zr8rjk2xrgvsgsq9nwmzp9ydc8q5ftv" in labels
    assert len(labels) == 7  # the airline has no digital-currency address


def test_ofac_address_lists_of_0xb10c_are_accepted() -> None:
    labels = parse_ofac(document("sanctioned_addresses_ETH.json"))
    assert Label(LAZARUS, "OFAC SDN") in labels and len(labels) == 3


def test_scamsniffer_keeps_valid_unique_addresses() -> None:
    labels = parse_scamsniffer(document("all.json"))
    assert [label.address for label in labels] == [
        "0x7538fd1e30d8e7771105d470fe8d65b6ab0da93f",
        "0xe6b39db1dc73f0e591eaeddda1f8798dabf836d0",
    ]  # "null" and the 41-character typo are skipped, the duplicate merged
    assert labels[0].label == "ScamSniffer: scam address"


def test_feeds_refuse_other_documents() -> None:
    with pytest.raises(ParseError):
        parse_ofac(Document("x", 200, b"<html>maintenance</html>"))
    with pytest.raises(ParseError):
        parse_scamsniffer(Document("x", 200, b'{"domains": []}'))


async def _stored(db: Database) -> dict[tuple[str, str], str]:
    async with db.session() as session:
        rows = await session.execute(select(AddressLabel.address, AddressLabel.source, AddressLabel.label))
        return {(address, source): label for address, source, label in rows}


async def test_refresh_stores_both_feeds_then_costs_a_304(
    empty_db_url: str, feed_server: tuple[str, list[str]]
) -> None:
    base, seen = feed_server
    urls = {"ofac": f"{base}/sdn.csv", "scamsniffer": f"{base}/all.json"}
    db = Database(empty_db_url)
    try:
        first = await refresh_labels(db, urls=urls)
        assert [(o.feed, o.status, o.added) for o in first] == [("ofac", "ok", 7), ("scamsniffer", "ok", 2)]
        stored = await _stored(db)
        assert stored[(LAZARUS, "ofac")].startswith("OFAC SDN: LAZARUS GROUP")
        assert ("0x7538fd1e30d8e7771105d470fe8d65b6ab0da93f", "scamsniffer") in stored
        again = await refresh_labels(db, urls=urls)
        assert [o.status for o in again] == ["not_modified", "not_modified"] and all(seen[-2:])
        failed = await refresh_labels(db, urls={"ofac": f"{base}/missing.csv"}, feeds=["ofac"])
        assert failed[0].status == "failed" and len(await _stored(db)) == 9  # a failed download changes nothing
    finally:
        await db.dispose()


async def test_replacing_a_feed_adds_updates_and_removes(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    try:
        async with db.session() as session:
            await replace_feed(
                session, "ofac", [Label("0x" + "a" * 40, "OFAC SDN: A"), Label("0x" + "b" * 40, "OFAC SDN: B")]
            )
        async with db.session() as session:
            outcome = await replace_feed(
                session, "ofac", [Label("0x" + "b" * 40, "OFAC SDN: B2"), Label("0x" + "c" * 40, "C")]
            )
        assert (outcome.added, outcome.updated, outcome.removed) == (1, 1, 1)
        assert await _stored(db) == {("0x" + "b" * 40, "ofac"): "OFAC SDN: B2", ("0x" + "c" * 40, "ofac"): "C"}
    finally:
        await db.dispose()


def test_the_feeds_are_declared_with_https_endpoints() -> None:
    assert set(FEEDS) == {"ofac", "scamsniffer"}
    assert all(f.endpoint.startswith("https://") and f.cadence_seconds == 86400 for f in FEEDS.values())


async def test_exploit_api_shows_the_labels_of_a_listed_attacker(db_url: str) -> None:
    db = Database(db_url)
    try:
        async with db.session() as session:
            rows = await session.execute(
                select(Exploit.id, Exploit.attacker_address)
                .where(Exploit.attacker_address.like("0x%"), Exploit.is_test.is_(False))
                .order_by(Exploit.timestamp.desc())
                .limit(2)
            )
            (labelled_id, attacker), (plain_id, _) = rows.all()
            assert attacker != attacker.lower()  # sources keep checksum case; labels are stored lower-case
            await replace_feed(session, "ofac", [Label(attacker.lower(), "OFAC SDN: LAZARUS GROUP")])
            await replace_feed(session, "scamsniffer", [Label(attacker.lower(), "ScamSniffer: scam address")])
            found = await labels_for(session, [attacker, None, "not an address"])
        assert list(found) == [attacker.lower()]
    finally:
        await db.dispose()
    expected = [
        {"label": "OFAC SDN: LAZARUS GROUP", "source": "ofac"},
        {"label": "ScamSniffer: scam address", "source": "scamsniffer"},
    ]
    async for client in make_client(make_settings(db_url)):
        one = (await client.get(f"/exploits/{labelled_id}")).json()
        assert one["attacker_address"] == attacker and one["attacker_labels"] == expected
        page = (await client.get("/api/v1/exploits?page_size=500")).json()["data"]
        by_id = {e["id"]: e for e in page}
        assert by_id[labelled_id]["attacker_labels"] == expected and by_id[plain_id]["attacker_labels"] == []
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
        assert "attacker_labels" in schema["ExploitOut"]["properties"]
        assert schema["ExploitOut"]["properties"]["attacker_labels"]["description"]


async def test_the_largest_losses_in_stats_carry_the_same_labels_as_the_exploit_alone(db_url: str) -> None:
    """/stats reads the largest losses with their sources and labels in one query (a join on the address as
    written or lower-cased); each must equal the exploit read alone, labelled or not."""
    from kamiyo.exploits.service import get_exploit
    from kamiyo.exploits.stats import compute_stats

    db = Database(db_url)
    try:
        async with db.session() as session:
            largest = (await compute_stats(session, 3650))["largest"]
            evm = [e for e in largest if (e["attacker_address"] or "").startswith("0x")]
            assert len(evm) >= 2 and len(largest) == 10
            mixed_case = next((e for e in evm if e["attacker_address"] != e["attacker_address"].lower()), evm[0])
            other = next(e for e in evm if e["id"] != mixed_case["id"])
            await replace_feed(session, "ofac", [Label(mixed_case["attacker_address"].lower(), "OFAC SDN: X")])
            await replace_feed(
                session,
                "scamsniffer",
                [Label(mixed_case["attacker_address"].lower(), "scam"), Label(other["attacker_address"].lower(), "s2")],
            )
        async with db.session() as session:
            again = {e["id"]: e for e in (await compute_stats(session, 3650))["largest"]}
            for exploit in again.values():
                assert exploit == await get_exploit(session, str(exploit["id"]))
    finally:
        await db.dispose()
    assert again[mixed_case["id"]]["attacker_labels"] == [
        {"label": "OFAC SDN: X", "source": "ofac"},
        {"label": "scam", "source": "scamsniffer"},
    ]
    assert again[other["id"]]["attacker_labels"] == [{"label": "s2", "source": "scamsniffer"}]
    assert sum(bool(e["attacker_labels"]) for e in again.values()) == 2
