"""Source rankings: each component checked by hand on a small constructed set, then on real data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kamiyo.db import Database
from kamiyo.ingest.health import record_run
from kamiyo.ingest.rankings import compute_rankings
from kamiyo.ingest.runner import IngestOptions
from kamiyo.ingest.scheduler import run_round
from kamiyo.ingest.store import store_reports
from kamiyo.sources import REGISTRY
from kamiyo.sources.base import Report
from tests.sources.fixture_server import fixture_server
from tests.support.app import make_client, make_settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
A = NOW - timedelta(days=10, hours=3)  # incident A, precise time
B = NOW - timedelta(days=5, hours=7)
C = NOW - timedelta(days=400)


def _r(source: str, protocol: str, ts: datetime, reported: datetime | None, **facts: object) -> Report:
    return Report(
        source=source,
        source_ref=f"{protocol}-{source}",
        protocol=protocol,
        timestamp=ts,
        reported_at=reported,
        **facts,  # type: ignore[arg-type]
    )


CONSTRUCTED = [
    # Alpha: defillama first, rekt 2 h later, slowmist a day later with a wrong amount and chain.
    _r("defillama", "Alpha", A, A + timedelta(hours=1), amount_usd=1.0e6, chain="ethereum"),
    _r("rekt", "Alpha", A, A + timedelta(hours=3), amount_usd=1.05e6, chain="ethereum"),
    _r("slowmist", "Alpha", A, A + timedelta(days=1, hours=1), amount_usd=2.0e6, chain="bsc"),
    # Beta: rekt first, defillama 4 h later; no chain stated.
    _r("rekt", "Beta", B, B + timedelta(hours=1), amount_usd=5e5),
    _r("defillama", "Beta", B, B + timedelta(hours=5), amount_usd=5e5),
    # Gamma: outside a 30-day window.
    _r("slowmist", "Gamma", C, C + timedelta(hours=1), amount_usd=1e6),
]


async def test_components_on_a_constructed_set(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(session, CONSTRUCTED)
        await record_run(session, "slowmist", ok=True, at=NOW - timedelta(days=2))
        await record_run(session, "slowmist", ok=False, error="HTTP 500", at=NOW - timedelta(days=1))
        await record_run(session, "slowmist", ok=False, error="old", at=NOW - timedelta(days=90))
    async with db.session() as session:
        rows = await compute_rankings(session, 30, now=NOW)
    await db.dispose()
    by = {r["source"]: r for r in rows}
    # Alpha's merged amount is the median 1.05M, its chain ethereum; Beta's amount 0.5M.
    assert by["defillama"] | {"rank": 0} == {
        "rank": 0, "source": "defillama", "reports": 2, "speed_median_s": 7200.0,  # delays 0 s and 4 h
        "exclusivity": 0.5, "coverage": 1.0, "accuracy": 1.0, "uptime": None, "timed_reports": 2,  # 5 of 5 agree
        "score": round(0.25 / (1 + 7200 / 86400) + 0.2 * 0.5 + 0.25 + 0.2, 4),
    }  # fmt: skip
    assert by["rekt"]["speed_median_s"] == 3600.0 and by["rekt"]["exclusivity"] == 0.5
    assert by["rekt"]["score"] == round(0.25 / (1 + 3600 / 86400) + 0.1 + 0.25 + 0.2, 4)
    slow = by["slowmist"]
    assert (slow["reports"], slow["speed_median_s"], slow["exclusivity"], slow["coverage"]) == (1, 86400.0, 0.0, 0.5)
    assert slow["accuracy"] == round(1 / 3, 4)  # the date agrees, amount and chain do not
    assert slow["uptime"] == 0.5  # one of the two runs in the window succeeded
    assert slow["score"] == round(0.25 * 0.5 + 0 + 0.25 * 0.5 + 0.2 / 3 + 0.1 * 0.5, 4)
    assert slow["timed_reports"] == 1 and by["defillama"]["timed_reports"] == 2
    assert [r["source"] for r in rows[:3]] == ["rekt", "defillama", "slowmist"]
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert {r["source"] for r in rows} >= set(REGISTRY)
    assert by["defihacklabs"]["score"] == 0 and by["defihacklabs"]["coverage"] == 0.0


async def test_rankings_route_on_bundled_data_and_fixtures(db_url: str) -> None:
    """The seeded DeFiHackLabs data plus one fixture round of every source, through the API."""
    db = Database(db_url)
    with fixture_server() as server:
        await run_round(db, IngestOptions(source_urls=server.source_urls(*REGISTRY)))
    await db.dispose()
    async for client in make_client(make_settings(db_url)):
        response = await client.get("/sources/rankings", params={"days": 3650})
        alias = await client.get("/api/v1/sources/rankings", params={"days": 3650})
        bad = await client.get("/sources/rankings", params={"days": 0})
        schema = (await client.get("/openapi.json")).json()
    assert response.status_code == 200 and alias.json() == response.json()
    rows = response.json()
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    by = {r["source"]: r for r in rows}
    assert set(by) == set(REGISTRY)
    for row in rows:
        for part in ("exclusivity", "coverage", "accuracy", "uptime"):
            assert row[part] is None or 0 <= row[part] <= 1
    assert by["defihacklabs"]["coverage"] > by["defillama"]["coverage"] > by["rekt"]["coverage"] > 0
    assert by["defihacklabs"]["uptime"] == 1.0 and 440 <= by["defillama"]["reports"] <= 448  # 2016 is > 10 years ago
    for name in ("defihacklabs", "defillama"):  # the seed and a list's first fetch: backfill, no known times
        assert by[name]["timed_reports"] == 0 and by[name]["speed_median_s"] is None and by[name]["exclusivity"] is None
    assert by["rekt"]["timed_reports"] == by["rekt"]["reports"] > 0 and by["rekt"]["speed_median_s"] is not None
    timed = schema["components"]["schemas"]["RankingOut"]["properties"]["timed_reports"]
    assert "known report time" in timed["description"]
    assert bad.status_code == 422 and bad.json()["error"]["code"]
    description = schema["paths"]["/sources/rankings"]["get"]["description"]
    for word in ("speed_median_s", "exclusivity", "coverage", "accuracy", "uptime", "score"):
        assert word in description


async def test_speed_and_exclusivity_use_only_reports_with_a_known_time(empty_db_url: str) -> None:
    d, e = NOW - timedelta(days=3), NOW - timedelta(days=2)
    reports = [
        _r("defillama", "Delta", d, None),  # backfilled history: time unknown
        _r("rekt", "Delta", d, d + timedelta(hours=2)),
        _r("slowmist", "Delta", d, d + timedelta(hours=5)),
        _r("defillama", "Echo", e, None),
        _r("slowmist", "Echo", e, None),
    ]
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(session, reports)
    async with db.session() as session:
        rows = await compute_rankings(session, 30, now=NOW)
    await db.dispose()
    by = {r["source"]: r for r in rows}
    llama, rekt, slow = by["defillama"], by["rekt"], by["slowmist"]
    assert (llama["reports"], llama["timed_reports"], llama["speed_median_s"], llama["exclusivity"]) == (
        2,
        0,
        None,
        None,
    )
    # no timed report: scored on coverage, accuracy and uptime only, their weights scaled to 1
    assert llama["coverage"] == 1.0 and llama["accuracy"] == 1.0 and llama["score"] == round(0.45 / 0.55, 4)
    assert (rekt["timed_reports"], rekt["speed_median_s"], rekt["exclusivity"]) == (1, 0.0, 1.0)
    assert rekt["score"] == round(0.25 + 0.20 + 0.25 * 0.5 + 0.20, 4)
    # slowmist's untimed Echo report counts for coverage, not for its exclusivity: 0 of 1, not 0 of 2
    assert (slow["reports"], slow["timed_reports"], slow["speed_median_s"], slow["exclusivity"]) == (2, 1, 10800.0, 0.0)
    assert slow["score"] == round(0.25 / (1 + 10800 / 86400) + 0.25 + 0.20, 4)
    assert by["defihacklabs"]["timed_reports"] == 0 and by["defihacklabs"]["score"] == 0


@pytest.mark.parametrize("days", [1, 3650])
async def test_rankings_of_an_empty_database_are_all_zero(empty_db_url: str, days: int) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        rows = await compute_rankings(session, days)
    await db.dispose()
    assert {r["source"] for r in rows} == set(REGISTRY) and all(r["score"] == 0 for r in rows)
