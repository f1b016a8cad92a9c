"""Merge quality on real data: hand-labelled candidate pairs of reports from five real recordings.

tests/fixtures/merge/labels.csv (see its README) holds pairs of reports (`a_*`, `b_*`: source, source_ref,
name, day, amount) from the bundled DeFiHackLabs list, the DeFiLlama snapshot, the DeFi-Hack-Chronicle,
SlowMist's page and rekt's index, each labelled by hand: `match` yes/no and the reason. Measured twice: the
pairwise rule alone, and end to end (every list stored through `store_reports`, DeFiHackLabs first as the
bundled seed: did the two reports land in the same exploit?).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.exploits.models import ReportRow
from kamiyo.ingest.matching import same_incident
from kamiyo.ingest.store import store_reports
from kamiyo.sources import defihack_chronicle, defihacklabs, defillama, rekt, slowmist
from kamiyo.sources.base import Document, Report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LABELS = FIXTURES / "merge" / "labels.csv"
SOURCES = FIXTURES / "sources"
LLAMA_SNAPSHOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "defillama-hacks" / "hacks_api_shape.json"


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: bool, actual: bool) -> None:
        self.tp += predicted and actual
        self.fp += predicted and not actual
        self.fn += actual and not predicted
        self.tn += not predicted and not actual

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn)


def _labels() -> list[dict[str, str]]:
    return list(csv.DictReader(LABELS.open()))


def _side(row: dict[str, str], prefix: str) -> tuple[str, datetime, float | None]:
    amount = row[f"{prefix}_amount_usd"]
    day = datetime.fromisoformat(row[f"{prefix}_date"]).replace(tzinfo=UTC)
    return row[f"{prefix}_protocol"], day, float(amount) if amount else None


def _document(path: Path, url: str = "fixture") -> Document:
    return Document(url=url, status=200, content=path.read_bytes())


def _recorded() -> list[Report]:
    """Every report of the four recorded lists stored after the seed (real recordings, not shipped)."""
    chronicle = [
        defihack_chronicle.parse_incident(_document(f), f.name)
        for f in sorted((SOURCES / "defihack_chronicle" / "hacks").iterdir())
    ]
    return [
        *defillama.parse(_document(SOURCES / "defillama" / "hacks")),
        *chronicle,
        *slowmist.parse(_document(SOURCES / "slowmist" / "index.html", "https://hacked.slowmist.io/")),
        *rekt.parse_html_index(_document(SOURCES / "rekt" / "index.html", "https://rekt.news/")),
    ]


async def _merged(url: str) -> dict[tuple[str, str], int]:
    db = Database(url)
    async with db.session() as session:
        await store_reports(session, defihacklabs.load_bundled())
    async with db.session() as session:
        await store_reports(session, _recorded())
    async with db.session() as session:
        rows = await session.execute(select(ReportRow.source, ReportRow.source_ref, ReportRow.exploit_id))
        exploit_of = {(source, ref): exploit_id for source, ref, exploit_id in rows}
    await db.dispose()
    return exploit_of


def test_labels_are_enough_and_well_formed() -> None:
    rows = _labels()
    assert len(rows) >= 400
    assert {r["match"] for r in rows} == {"yes", "no"}
    assert sum(r["match"] == "yes" for r in rows) >= 200
    assert all(r["reason"].strip() for r in rows)
    assert len({(r["a_source"], r["a_ref"], r["b_source"], r["b_ref"]) for r in rows}) == len(rows)


def test_pairwise_rule_precision_and_recall() -> None:
    score = Score()
    for row in _labels():
        same_source = row["a_source"] == row["b_source"]
        score.add(same_incident(_side(row, "a"), _side(row, "b"), same_source=same_source), row["match"] == "yes")
    # The rule alone, without tx hashes, the same-source veto across a record and the best-pair choice of the store.
    assert score.precision >= 0.95, score
    assert score.recall >= 0.9, score


async def test_stored_merge_precision_and_recall(empty_db_url: str) -> None:
    """Seed DeFiHackLabs, ingest the four other recordings, compare the merged incidents with the labels."""
    exploit_of = await _merged(empty_db_url)
    score = Score()
    misses = []
    for row in _labels():
        a = exploit_of[(row["a_source"], row["a_ref"])]
        b = exploit_of[(row["b_source"], row["b_ref"])]
        score.add(a == b, row["match"] == "yes")
        if (a == b) != (row["match"] == "yes"):
            misses.append((row["a_protocol"], row["b_protocol"], row["match"]))
    print(f"merge quality: precision {score.precision:.3f}, recall {score.recall:.3f}, {score}", misses)
    assert score.precision >= 0.99, (score, misses)
    assert score.recall >= 0.97, (score, misses)


async def test_a_source_joins_a_record_twice_only_on_one_hash_under_one_name(empty_db_url: str) -> None:
    """Two reports of one source in one record share a tx hash and a name (the source listed the incident
    twice); a hash pasted into two differently named PoCs (MTToken and FutureSwap) keeps them apart."""
    exploit_of = await _merged(empty_db_url)
    reports: dict[tuple[str, str], Report] = {(r.source, r.source_ref): r for r in defihacklabs.load_bundled()}
    by_record: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for key, exploit_id in exploit_of.items():
        by_record[exploit_id].append(key)
    for keys in by_record.values():
        for source in {s for s, _ in keys}:
            mine = [reports.get(k) for k in keys if k[0] == source]
            if len(mine) > 1:
                assert source == "defihacklabs" and all(mine), keys
                hashes = [set(r.tx_hashes) | {r.tx_hash} - {None} for r in mine if r is not None]
                assert set.intersection(*hashes), keys
    apart = {r.protocol: exploit_of[(r.source, r.source_ref)] for r in reports.values()}
    assert apart["MTToken"] != apart["FutureSwap"] and apart["DominoTT"] != apart["HNet"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("CREAM Lending", "Cream Finance"),
        ("Bunny", "PancakeBunny"),
        ("UwU Lend", "UwuLend"),
        ("Euler V1", "EulerFinance"),
    ],
)
def test_protocol_names_of_one_project_match(a: str, b: str) -> None:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    assert same_incident((a, day, 1e6), (b, day, 1.2e6))
