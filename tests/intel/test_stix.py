"""`GET /api/v1/stix/bundle` on real SQLite and PostgreSQL: a bundle `stix2` parses without custom content
allowed, over exactly the exploits `/exploits` gives for the same filters and page, with stable ids."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import stix2

from kamiyo.intel import ids
from tests.intel.conftest import touch

EXTENSION = "extension-definition--"


def _by_type(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for obj in bundle["objects"]:
        found.setdefault(obj["type"], []).append(obj)
    return found


def _facts(incident: dict[str, Any]) -> dict[str, Any]:
    ((key, facts),) = incident["extensions"].items()
    assert key.startswith(EXTENSION)
    return dict(facts)


@pytest.mark.reads_seed
async def test_bundle_parses_strictly_and_carries_each_exploit(client: httpx.AsyncClient) -> None:
    page = (await client.get("/exploits?page_size=200&chain=ethereum")).json()["data"]
    r = await client.get("/api/v1/stix/bundle?page_size=200&chain=ethereum")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/stix+json")
    parsed = stix2.parse(r.text, allow_custom=False)  # custom content anywhere would raise
    assert len(parsed.objects) == len(r.json()["objects"])
    bundle = r.json()
    objects = {o["id"]: o for o in bundle["objects"]}
    assert len(objects) == len(bundle["objects"])  # no object twice
    kinds = _by_type(bundle)
    (definition,) = kinds["extension-definition"]
    assert definition["extension_types"] == ["property-extension"]
    incidents = kinds["incident"]
    assert len(incidents) == len(page) == 200
    for exploit, incident in zip(page, incidents, strict=True):
        facts = _facts(incident)
        assert set(incident["extensions"]) == {definition["id"]}
        assert facts["chain"] == exploit["chain"] == "ethereum" and facts["protocol"] == exploit["protocol"]
        assert facts.get("amount_usd") == exploit["amount_usd"] and facts["loss_kind"] == exploit["loss_kind"]
        if exploit["tx_hash"]:
            assert facts["tx_hashes"][0] == exploit["tx_hash"]
        assert incident["created"][:19] == exploit["first_seen_at"][:19]
        assert incident["modified"][:19] == exploit["updated_at"][:19]
        assert {ref["source_name"] for ref in incident["external_references"]} >= {
            s["source"] for s in exploit["sources"]
        }
    # Every reference resolves inside the bundle; each attacker address is an indicator of its incident.
    for rel in kinds["relationship"]:
        assert rel["source_ref"] in objects and rel["target_ref"] in objects
    indicates = {
        r["source_ref"]: r["target_ref"] for r in kinds["relationship"] if r["relationship_type"] == "indicates"
    }
    with_address = [(e, i) for e, i in zip(page, incidents, strict=True) if e["attacker_address"]]
    assert with_address and len(kinds["indicator"]) == len(with_address)
    for (exploit, incident), indicator in zip(with_address, kinds["indicator"], strict=True):
        assert indicator["pattern"] == f"[cryptocurrency-wallet:value = '{exploit['attacker_address']}']"
        assert indicates[indicator["id"]] == incident["id"]
    reported = Counter(r["target_ref"] for r in kinds["relationship"] if r["relationship_type"] == "related-to")
    sources = {s["source"] for e in page for s in e["sources"]}
    assert {objects[t]["type"] for t in reported} == {"identity"} and len(reported) == len(sources)
    assert all(o.get("created_by_ref") for o in bundle["objects"] if o["type"] != "identity" or o["name"] != "Kamiyo")


async def test_ids_come_from_the_stable_key_and_repeat(client: httpx.AsyncClient, db_url: str) -> None:
    url = "/api/v1/stix/bundle?page_size=100&sort=amount_usd"
    first, again = (await client.get(url)).json(), (await client.get(url)).json()
    assert first == again
    page = (await client.get("/exploits?page_size=100&sort=amount_usd")).json()["data"]
    incidents = _by_type(first)["incident"]
    for exploit, incident in zip(page, incidents, strict=True):
        key = f"src:{exploit['sources'][0]['source']}:{exploit['sources'][0]['ref']}"
        assert incident["id"] == f"incident--{uuid.uuid5(ids.NAMESPACE, key)}"  # never the database's row id
    # A changed record keeps its ids and gets a new `modified`.
    changed = page[0]
    await touch(db_url, changed["id"], description="changed")
    after = (await client.get(url)).json()
    old, new = incidents[0], _by_type(after)["incident"][0]
    assert new["id"] == old["id"] and new["modified"] > old["modified"] and new["description"] == "changed"


@pytest.mark.reads_seed
async def test_paging_and_filters_are_those_of_exploits(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/stix/bundle?page_size=30&chain=bsc")
    total = (await client.get("/exploits?page_size=1&chain=bsc")).json()["total"]
    assert int(r.headers["x-total-count"]) == total > 30
    link = r.headers["link"]
    assert link.endswith('>; rel="next"') and "cursor=" in link and "chain=bsc" in link
    nxt = await client.get(link[1 : link.index(">")])
    first_ids = {o["id"] for o in _by_type(r.json())["incident"]}
    next_incidents = _by_type(nxt.json())["incident"]
    assert len(next_incidents) == 30 and not first_ids & {o["id"] for o in next_incidents}
    assert {_facts(i)["chain"] for i in next_incidents} == {"bsc"}
    bad = await client.get("/api/v1/stix/bundle?chain=nowhere")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid"
    too_big = await client.get("/api/v1/stix/bundle?page_size=501")
    assert too_big.status_code == 422
