"""Trustworthy records: yearly totals against DeFiLlama, curated corrections, tx-hash clashes, the export round trip."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from kamiyo.db import Database
from kamiyo.exploits.export import csv_header, csv_rows, iter_exploits
from kamiyo.exploits.filters import ExploitFilters
from kamiyo.exploits.models import Exploit, MergeConflict, ReportRow, is_public
from kamiyo.ingest.importer import ImportProblems, iter_reports
from kamiyo.ingest.merge import derive
from kamiyo.ingest.store import store_reports
from kamiyo.sources import defihacklabs, defillama
from kamiyo.sources.base import Document, Report
from kamiyo.vocabulary import curation

LLAMA = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "defillama" / "hacks"
TX = "0x" + "ab" * 32
OTHER_TX = "0x" + "cd" * 32


def _report(source: str, ref: str, name: str, day: datetime, **facts: Any) -> Report:
    return Report(source=source, source_ref=ref, protocol=name, timestamp=day, **facts)


async def test_yearly_realised_losses_are_within_defillamas_totals(empty_db_url: str) -> None:
    """The merged DeFiHackLabs + DeFiLlama set counts each year's losses within 0.95-1.25x DeFiLlama's own sum."""
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(session, defihacklabs.load_bundled())
    async with db.session() as session:
        await store_reports(session, defillama.parse(Document(url="f", status=200, content=LLAMA.read_bytes())))
    async with db.session() as session:
        rows = await session.execute(
            select(Exploit.timestamp, Exploit.amount_usd, Exploit.loss_kind).where(is_public())
        )
        ours: dict[int, float] = defaultdict(float)
        for ts, amount, kind in rows:
            if kind == "realised":
                ours[ts.year] += amount or 0.0
    await db.dispose()
    theirs: dict[int, float] = defaultdict(float)
    for item in json.loads(LLAMA.read_bytes()):
        theirs[datetime.fromtimestamp(item["date"], UTC).year] += float(item.get("amount") or 0)
    ratios = {year: round(ours[year] / theirs[year], 3) for year in range(2020, 2026)}
    print("yearly realised losses / DeFiLlama:", ratios)
    assert all(0.95 <= r <= 1.25 for r in ratios.values()), ratios


def test_every_curated_entry_has_a_reason_and_a_reference() -> None:
    entries = [c for found in curation.corrections().values() for c in found]
    assert len(entries) >= 10
    assert all(c.reason and c.reference and c.reference.startswith("http") for c in entries)
    assert len(curation.alias_keys()) >= 30


def test_a_bad_correction_fails_loudly() -> None:
    good = {"target": "x:y", "field": "amount_usd", "value": 5.0, "reason": "r", "reference": "https://e.org"}
    assert curation.parse_corrections({"correction": [good]})["x:y"][0].value == 5.0
    for broken in ({"reason": ""}, {"reference": None}, {"field": "protocol_key"}, {"value": -1}, {"target": "y"}):
        with pytest.raises(curation.CurationError):
            curation.parse_corrections({"correction": [good | broken]})


def test_facts_come_from_the_most_trusted_source_not_a_median() -> None:
    day = datetime(2024, 5, 1, tzinfo=UTC)
    reports = [
        _report("defihacklabs", "d", "Nomad", day, amount_usd=152e6, amount_text="152M", chain="ethereum", tx_hash=TX),
        _report("rekt", "r", "Nomad Bridge", day, amount_usd=400e6, amount_text="$400M", chain="ethereum"),
        _report("defillama", "l", "Nomad", day, amount_usd=190e6, amount_text="$190,000,000", chain="multichain"),
    ]
    facts = derive(reports)
    assert facts["amount_usd"] == 190e6 and facts["amount_text"] == "$190,000,000"  # DeFiLlama's words, not a mix
    assert facts["chain"] == "ethereum" and facts["tx_hash"] == TX and facts["protocol"] == "Nomad"
    assert facts["disputed"] is True  # rekt's 400M is more than 50% (and $100k) above the others
    calm = derive([reports[0], _report("defillama", "l", "Nomad", day, amount_usd=160e6, chain="ethereum")])
    assert calm["disputed"] is False and calm["amount_usd"] == 160e6


def test_returned_is_never_more_than_lost_without_a_correction() -> None:
    day = datetime(2024, 5, 1, tzinfo=UTC)
    facts = derive([_report("defillama", "l", "Acme", day, amount_usd=1e6, recovered_usd=5e6)])
    assert facts["returned_usd"] == facts["recovered_usd"] == 1e6


async def test_a_correction_survives_a_later_ingest_of_the_same_upstream_row(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = datetime(2018, 4, 22, tzinfo=UTC)
    entry = {
        "target": "defihacklabs:src/test/2018-04/Acme_exp.sol",
        "field": "loss_kind",
        "value": "nominal",
        "reason": "minted tokens at their nominal price",
        "reference": "https://example.org/acme",
    }
    amount = dict(entry, field="amount_usd", value=1.5e6, reason="the realised figure")
    monkeypatch.setattr(curation, "corrections", lambda: curation.parse_corrections({"correction": [entry, amount]}))
    row = _report("defihacklabs", "src/test/2018-04/Acme_exp.sol", "Acme", day, amount_usd=900e6)
    db = Database(empty_db_url)
    for stated in (900e6, 950e6):  # the upstream row again, with its error changed
        async with db.session() as session:
            await store_reports(session, [_report("defihacklabs", row.source_ref, "Acme", day, amount_usd=stated)])
    async with db.session() as session:
        await store_reports(session, [_report("defillama", "Acme|2018-04-22", "Acme", day, amount_usd=2e6)])
        exploit = (await session.execute(select(Exploit))).scalar_one()
        daily = await session.execute(select(func.sum(Exploit.amount_usd)).where(Exploit.loss_kind == "realised"))
    await db.dispose()
    assert (exploit.amount_usd, exploit.loss_kind) == (1.5e6, "nominal")
    assert [c["field"] for c in exploit.corrections] == ["loss_kind", "amount_usd"]
    assert exploit.corrections[0]["reason"] == entry["reason"] and exploit.corrections[0]["reference"]
    assert daily.scalar_one() is None  # a nominal loss is not counted in totals


async def test_a_copied_tx_hash_does_not_fuse_two_incidents_and_is_recorded(empty_db_url: str) -> None:
    """PoC headers copy-pasted one hash into MTToken and FutureSwap: other chain/dates and names stay apart."""
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(
            session,
            [_report("defihacklabs", "a", "MTToken", datetime(2023, 12, 7, tzinfo=UTC), tx_hash=TX, chain="bsc")],
        )
    async with db.session() as session:
        await store_reports(
            session,
            [
                _report("slowmist", "b", "FutureSwap", datetime(2023, 12, 28, tzinfo=UTC), tx_hash=TX, chain="bsc"),
                _report("rekt", "c", "MTToken", datetime(2023, 12, 8, tzinfo=UTC), tx_hash=TX, chain="bsc"),
            ],
        )
        sources = await session.execute(select(ReportRow.source, ReportRow.exploit_id).order_by(ReportRow.source))
        placed = dict(sources.all())
        conflicts = (await session.execute(select(MergeConflict))).scalars().all()
    await db.dispose()
    assert placed["rekt"] == placed["defihacklabs"] != placed["slowmist"]
    assert [(c.source, c.source_ref, c.exploit_id, c.tx_hash) for c in conflicts] == [
        ("slowmist", "b", placed["defihacklabs"], TX)
    ]


async def test_different_hashes_on_one_chain_days_apart_stay_apart(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(
            session,
            [
                _report("defihacklabs", "a", "Acme", datetime(2024, 6, 10, tzinfo=UTC), tx_hash=TX, chain="ethereum"),
                _report("slowmist", "b", "Acme", datetime(2024, 6, 13, tzinfo=UTC), tx_hash=OTHER_TX, chain="ethereum",
                        amount_usd=None),
            ],
        )  # fmt: skip
        count = (await session.execute(select(func.count()).select_from(Exploit))).scalar_one()
    await db.dispose()
    assert count == 2


async def _records(url: str) -> list[tuple[Any, ...]]:
    """Every record's facts and its sources' own words, in a form that does not depend on ids or clocks."""
    db = Database(url)
    async with db.session() as session:
        found = [e async for e in iter_exploits(session, ExploitFilters(), "timestamp")]
    await db.dispose()
    skip = {"id", "first_seen_at", "updated_at", "attacker_labels", "sources", "verified_on_chain"}
    return sorted(
        (
            tuple(sorted((k, str(v)) for k, v in e.items() if k not in skip)),
            tuple(sorted(tuple(sorted((k, str(v)) for k, v in s.items() if k != "seen_at")) for s in e["sources"])),
        )
        for e in found
    )


async def _export_file(url: str, path: Path) -> Path:
    """What `kamiyo export` writes, in the format of the file's suffix (.jsonl or .csv)."""
    db = Database(url)
    async with db.session() as session:
        exploits = [e async for e in iter_exploits(session, ExploitFilters())]
    await db.dispose()
    if path.suffix == ".csv":
        path.write_text(csv_header() + csv_rows(exploits))
    else:
        path.write_text("".join(json.dumps(e) + "\n" for e in exploits))
    return path


async def _import(url: str, path: Path) -> None:
    problems = ImportProblems()
    db = Database(url)
    async with db.session() as session:
        await store_reports(session, list(iter_reports(path, problems)))
    await db.dispose()
    assert problems.errors == []


async def _seed_with_llama(url: str) -> None:
    db = Database(url)
    async with db.session() as session:
        await store_reports(session, defillama.parse(Document(url="f", status=200, content=LLAMA.read_bytes())))
    await db.dispose()


RICH_TX = "0x" + "4b" * 32
SOLANA_TX = "2zCz2GgSoSS68eNJENWrYB48dMM1zmH8SZkgYneVDv2G4gRsVfwu5rNXtK5BKFxn7fSqX9BvrBc1rdPAeBEcD6Es"


def _rich_reports() -> list[Report]:
    """One multi-chain bridge incident told by two sources under two names (one tx), with every further fact."""
    day = datetime(2021, 9, 9, tzinfo=UTC)
    return [
        _report(
            "slowmist", "meteor-2021", "Meteor Bridge", day, chain="ethereum", amount_usd=26_000_000.0,
            tx_hash=RICH_TX, chains=("ethereum", "solana"), technique="Signature verification bypass",
            classification="Infrastructure", target_type="bridge", tx_hashes=(RICH_TX, SOLANA_TX),
            references=("https://example.org/meteor-pm",),
        ),
        _report(
            "rekt", "meteorite-2021", "Meteorite", day, chain="ethereum", tx_hash=RICH_TX,
            attack_contracts=("0x" + "11" * 20,), vulnerable_contracts=("0x" + "22" * 20,),
        ),
    ]  # fmt: skip


async def _seed_rich(url: str) -> None:
    db = Database(url)
    async with db.session() as session:
        await store_reports(session, _rich_reports())
    await db.dispose()


async def _counts(url: str) -> tuple[int, int]:
    db = Database(url)
    async with db.session() as session:
        exploits = (await session.execute(select(func.count()).select_from(Exploit))).scalar_one()
        reports = (await session.execute(select(func.count()).select_from(ReportRow))).scalar_one()
    await db.dispose()
    return exploits, reports


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
async def test_export_then_import_changes_nothing_and_rebuilds_the_same_records(
    db_url: str, empty_db_url: str, tmp_path: Path, suffix: str
) -> None:
    await _seed_with_llama(db_url)
    await _seed_rich(db_url)
    before, counts = await _records(db_url), await _counts(db_url)
    rich = [dict(facts) for facts, _ in before if RICH_TX in str(dict(facts)["tx_hashes"])]
    assert len(rich) == 1 and rich[0]["technique"] == "Signature verification bypass"
    assert rich[0]["target_type"] == "bridge"
    assert "solana" in rich[0]["chains"] and "ethereum" in rich[0]["chains"] and SOLANA_TX in rich[0]["tx_hashes"]
    assert "0x" + "11" * 20 in rich[0]["attack_contracts"] and "example.org/meteor-pm" in rich[0]["links"]
    assert (
        "Meteorite" in rich[0]["name"] + rich[0]["aliases"] and "Meteor Bridge" in rich[0]["name"] + rich[0]["aliases"]
    )
    exported = await _export_file(db_url, tmp_path / f"export{suffix}")
    await _import(db_url, exported)
    assert await _counts(db_url) == counts
    assert await _records(db_url) == before
    await _import(empty_db_url, exported)
    assert await _counts(empty_db_url) == counts
    assert await _records(empty_db_url) == before


async def test_import_rows_with_distinct_hashes_are_never_fuzzy_merged(empty_db_url: str, tmp_path: Path) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        {"protocol": "Acme", "chain": "bsc", "timestamp": (start + timedelta(hours=i)).isoformat(),
         "tx_hash": "0x" + f"{i:064x}", "amount_usd": 1e6, "sources": [{"source": "defillama"}]}
        for i in range(50)
    ]  # fmt: skip
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    await _import(empty_db_url, path)
    assert await _counts(empty_db_url) == (50, 50)


async def test_pairing_takes_the_best_match_not_the_first_to_arrive(empty_db_url: str) -> None:
    """UwU Lend, drained on 10 and 13 June 2024: the seeded 10 June PoC takes DeFiLlama's 10 June entry even when
    the 13 June one comes first in the feed; the second hack stays its own record."""
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(session, [_report("defihacklabs", "d", "UwULend", datetime(2024, 6, 10, tzinfo=UTC))])
    async with db.session() as session:
        await store_reports(
            session,
            [
                _report("defillama", "l2", "UwU Lend", datetime(2024, 6, 13, tzinfo=UTC), amount_usd=3.7e6),
                _report("defillama", "l1", "UwU Lend", datetime(2024, 6, 10, tzinfo=UTC), amount_usd=19.3e6),
            ],
        )
        placed = dict((await session.execute(select(ReportRow.source_ref, ReportRow.exploit_id))).all())
    await db.dispose()
    assert placed["d"] == placed["l1"] != placed["l2"]
