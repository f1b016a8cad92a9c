"""Merge quality on real data: hand-labelled DeFiHackLabs × DeFiLlama candidate pairs.

tests/fixtures/merge/labels.csv holds every candidate pair of the bundled DeFiHackLabs list and the
DeFiLlama snapshot whose names look alike (similarity ≥ 0.5, containment or a shared 3-letter
prefix, chosen independently of Kamiyo's matcher) within 10 days, each labelled by hand: `match`
yes/no and the reason. Measured twice: the pairwise rule alone, and end to end (both lists stored
through `store_reports`, then: did the two reports land in the same exploit?).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.exploits.models import Report as ReportRow
from kamiyo.ingest.matching import same_incident
from kamiyo.ingest.store import store_reports
from kamiyo.sources import defihacklabs, defillama
from kamiyo.sources.base import Document

LABELS = Path(__file__).resolve().parents[1] / "fixtures" / "merge" / "labels.csv"
LLAMA = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "defillama" / "hacks"


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


def test_labels_are_enough_and_well_formed() -> None:
    rows = _labels()
    assert len(rows) >= 100
    assert {r["match"] for r in rows} == {"yes", "no"}
    assert sum(r["match"] == "yes" for r in rows) >= 100
    assert all(r["reason"].strip() for r in rows)
    assert len({(r["defihacklabs_ref"], r["defillama_ref"]) for r in rows}) == len(rows)


def test_pairwise_rule_precision_and_recall() -> None:
    score = Score()
    for row in _labels():
        score.add(same_incident(_side(row, "defihacklabs"), _side(row, "defillama")), row["match"] == "yes")
    # The rule alone, without the same-source veto and best-candidate choice of the store.
    assert score.precision >= 0.97, score
    assert score.recall >= 0.9, score


async def test_stored_merge_precision_and_recall(empty_db_url: str) -> None:
    """Seed DeFiHackLabs, ingest the DeFiLlama snapshot, compare the merged incidents with the labels."""
    llama = list(defillama.parse(Document(url="fixture", status=200, content=LLAMA.read_bytes())))
    db = Database(empty_db_url)
    async with db.session() as session:
        await store_reports(session, defihacklabs.load_bundled())
    async with db.session() as session:
        await store_reports(session, llama)
    async with db.session() as session:
        rows = await session.execute(select(ReportRow.source, ReportRow.source_ref, ReportRow.exploit_id))
        exploit_of = {(source, ref): exploit_id for source, ref, exploit_id in rows}
    await db.dispose()
    score = Score()
    for row in _labels():
        a = exploit_of[("defihacklabs", row["defihacklabs_ref"])]
        b = exploit_of[("defillama", row["defillama_ref"])]
        score.add(a == b, row["match"] == "yes")
    print(f"merge quality: precision {score.precision:.3f}, recall {score.recall:.3f}, {score}")
    assert score.precision >= 0.98, score
    assert score.recall >= 0.9, score


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
