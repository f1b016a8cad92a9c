"""The MISP feed on real SQLite and PostgreSQL: a manifest of every exploit, and one event per exploit that
`pymisp` loads, with the tags of the `kamiyo` taxonomy and stable UUIDs (the STIX incident's)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import requests
from pymisp import MISPEvent

from kamiyo.intel import ids
from tests.intel.conftest import touch
from tests.support.live import LiveServer, all_exploits


@pytest.mark.reads_seed
async def test_manifest_lists_every_exploit_once(client: httpx.AsyncClient) -> None:
    exploits = await all_exploits(client)
    r = await client.get("/api/v1/misp/manifest.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    manifest = r.json()
    assert set(manifest) == {str(ids.incident_uuid(ids.stable_key(e))) for e in exploits}
    assert len(manifest) == len(exploits) > 800
    by_uuid = {str(ids.incident_uuid(ids.stable_key(e))): e for e in exploits}
    for event_uuid, entry in list(manifest.items())[:50]:
        exploit = by_uuid[event_uuid]
        assert set(entry) == {"info", "date", "threat_level_id", "analysis", "timestamp", "Orgc", "Tag"}
        assert entry["date"] == exploit["timestamp"][:10] and exploit["protocol"] in entry["info"]
        assert {t["name"] for t in entry["Tag"]} >= {
            f'kamiyo:category="{exploit["category"]}"',
            f'kamiyo:chain="{exploit["chain"]}"',
        }


async def test_events_load_in_pymisp(client: httpx.AsyncClient, db_url: str) -> None:
    exploits = await all_exploits(client, "&sort=-amount_usd")
    with_tx = next(e for e in exploits if e["tx_hash"] and e["attacker_address"] and e["amount_usd"])
    event_uuid = ids.incident_uuid(ids.stable_key(with_tx))
    r = await client.get(f"/api/v1/misp/{event_uuid}.json")
    assert r.status_code == 200
    event = MISPEvent()
    event.load(r.text)
    assert event.uuid == str(event_uuid) and event.info.startswith(with_tx["protocol"])
    assert int(event.threat_level_id) == 1  # the largest losses are high
    values = {(a.type, a.category, a.value) for a in event.attributes}
    assert ("text", "Financial fraud", with_tx["tx_hash"]) in values
    assert ("text", "Financial fraud", with_tx["attacker_address"]) in values
    assert ("text", "Other", with_tx["chain"]) in values
    assert ("float", "Other", str(with_tx["amount_usd"])) in values
    assert {s["url"] for s in with_tx["sources"] if s["url"]} <= {v for t, _, v in values if t == "link"}
    assert {t.name for t in event.tags} >= {f'kamiyo:chain="{with_tx["chain"]}"', "tlp:clear"}
    assert all(uuid.UUID(a.uuid) for a in event.attributes)
    # The same answer again (stable attribute uuids), and after a change the same event uuid, newer timestamp.
    assert (await client.get(f"/api/v1/misp/{event_uuid}.json")).json() == r.json()
    await touch(db_url, with_tx["id"], description="changed")
    changed = (await client.get(f"/api/v1/misp/{event_uuid}.json")).json()["Event"]
    assert changed["uuid"] == str(event_uuid) and int(changed["timestamp"]) > int(r.json()["Event"]["timestamp"])


@pytest.mark.reads_seed
async def test_unknown_and_bad_uuids(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/api/v1/misp/{uuid.uuid4()}.json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = await client.get("/api/v1/misp/not-a-uuid.json")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid"


@pytest.mark.reads_seed
async def test_feed_is_readable_over_http(db_url: str) -> None:
    """What a MISP instance does with a feed URL: the manifest, then each event it lists."""
    with LiveServer(db_url, KAMIYO_RATE_LIMITS="off") as live:

        def pull() -> list[MISPEvent]:
            feed = f"{live.base_url}/api/v1/misp"
            manifest = requests.get(f"{feed}/manifest.json", timeout=10).json()
            events = []
            for event_uuid in list(manifest)[:20]:
                event = MISPEvent()
                event.load(requests.get(f"{feed}/{event_uuid}.json", timeout=10).text)
                assert event.uuid == event_uuid and event.info == manifest[event_uuid]["info"]
                events.append(event)
            return events

        assert len(await asyncio.to_thread(pull)) == 20


async def test_event_uuids_stay_when_reports_arrive_and_follow_a_changed_first_report(
    client: httpx.AsyncClient, db_url: str
) -> None:
    """A record keeps its UUID when a later report arrives, even one its source published earlier (ids are keyed
    by the first stored report). The UUID index is built once, then kept current: when the first report goes,
    the exploit answers under its new UUID and the old one is gone (not another exploit's, not stale)."""
    from datetime import datetime, timedelta

    from sqlalchemy import delete

    from kamiyo.db import Database
    from kamiyo.exploits.models import ReportRow
    from kamiyo.kit.timeutil import utcnow

    exploit = (await client.get("/exploits?page_size=1")).json()["data"][0]
    old = ids.incident_uuid(ids.stable_key(exploit))
    assert (await client.get(f"/api/v1/misp/{old}.json")).status_code == 200  # builds the index
    first = exploit["sources"][0]
    earliest = datetime.fromisoformat((first["reported_at"] or first["seen_at"]).replace("Z", "+00:00"))
    db = Database(db_url)
    try:
        async with db.session() as session:
            session.add(
                ReportRow(
                    exploit_id=exploit["id"],
                    source="rekt",
                    source_ref="an-earlier-report",
                    reported_at=earliest - timedelta(days=1),
                    seen_at=utcnow(),
                    protocol=exploit["protocol"],
                    timestamp=earliest - timedelta(days=1),
                    raw={},
                )
            )
        await touch(db_url, exploit["id"])
        new = ids.incident_uuid(ids.key_from_report("rekt", "an-earlier-report"))
        assert (await client.get(f"/api/v1/misp/{old}.json")).json()["Event"]["uuid"] == str(old)
        assert (await client.get(f"/api/v1/misp/{new}.json")).status_code == 404
        async with db.session() as session:
            await session.execute(
                delete(ReportRow).where(ReportRow.exploit_id == exploit["id"], ReportRow.source != "rekt")
            )
    finally:
        await db.dispose()
    await touch(db_url, exploit["id"])
    r = await client.get(f"/api/v1/misp/{new}.json")
    assert r.status_code == 200 and r.json()["Event"]["uuid"] == str(new)
    assert (await client.get(f"/api/v1/misp/{old}.json")).status_code == 404
