"""Which incident a new report belongs to, when no transaction hash decides it.

Rule (also in README): a report without a known tx hash joins an incident with the same loose
protocol key (`protocol_match_key`), an incident time within ±3 days, and a compatible USD loss
(`amounts_compatible`), unless that incident already has a report from the same source — a source
lists one incident once, so two of its entries are two incidents (UwU Lend was drained twice in
four days). Among several candidates the closest in time wins, then the closest in amount.

Candidates come from `exploit_merge_keys` with one indexed query per batch (a VALUES list of the
batch's keys and windows joined on (key, ts)), the best few per report chosen in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.models import Report as ReportRow
from kamiyo.ingest.models import MergeKey
from kamiyo.ingest.protocols import AMOUNT_RATIO, AMOUNT_SLACK_USD, amounts_compatible, protocol_match_key
from kamiyo.sources.base import Report

WINDOW = timedelta(days=3)
CANDIDATES_PER_REPORT = 5
QUERY_CHUNK = 5000  # probes per candidate query


def same_incident(
    a: tuple[str, datetime, float | None], b: tuple[str, datetime, float | None], *, same_source: bool = False
) -> bool:
    """The fuzzy rule on (protocol, time, USD loss) pairs; the merge-quality test measures it."""
    if same_source:
        return False
    key_a, key_b = protocol_match_key(a[0]), protocol_match_key(b[0])
    return bool(key_a) and key_a == key_b and abs(a[1] - b[1]) <= WINDOW and amounts_compatible(a[2], b[2])


def _rank(ts: float, amount: float | None, other_ts: float, other_amount: float | None) -> tuple[float, float]:
    gap = abs(ts - other_ts)
    if amount is None or other_amount is None or amount <= 0 or other_amount <= 0:
        return gap, math.inf
    return gap, abs(math.log(amount / other_amount))


async def fuzzy_candidates(session: AsyncSession, reports: Sequence[Report]) -> dict[int, list[int]]:
    """Position in `reports` -> up to CANDIDATES_PER_REPORT stored exploit ids, best first."""
    found: dict[int, list[int]] = {}
    for start in range(0, len(reports), QUERY_CHUNK):
        rows = []
        for i, report in enumerate(reports[start : start + QUERY_CHUNK], start=start):
            key = protocol_match_key(report.protocol)
            if key:
                ts = report.timestamp.timestamp()
                span = WINDOW.total_seconds()
                rows.append((i, key, ts - span, ts + span, ts, report.amount_usd))
        if rows:
            for i, exploit_id in await _query(session, rows):
                found.setdefault(i, []).append(exploit_id)
    return found


# The batch's (key, window) probes go into a per-connection temporary table with one executemany, so the
# join below is a fixed statement (compiled once, cached) rather than a VALUES list of thousands of literals.
PROBE = Table(
    "kamiyo_merge_probe",
    MetaData(),
    Column("i", Integer),
    Column("key", String(200)),
    Column("lo", Float),
    Column("hi", Float),
    Column("ts", Float),
    Column("amt", Float),
)
CREATE_PROBE = text(
    "CREATE TEMPORARY TABLE IF NOT EXISTS kamiyo_merge_probe "
    "(i INTEGER, key VARCHAR(200), lo FLOAT, hi FLOAT, ts FLOAT, amt FLOAT)"
)


def _candidates_query() -> Any:
    q, m = PROBE.c, MergeKey.__table__.c
    compatible = or_(
        m.amount.is_(None),
        q.amt.is_(None),
        func.abs(m.amount - q.amt) <= AMOUNT_SLACK_USD,
        and_(m.amount <= q.amt * AMOUNT_RATIO, q.amt <= m.amount * AMOUNT_RATIO),
    )
    rank = func.row_number().over(partition_by=q.i, order_by=(func.abs(m.ts - q.ts), m.exploit_id)).label("rn")
    pairs = (
        select(q.i, m.exploit_id, rank)
        .select_from(PROBE)
        .join(MergeKey.__table__, and_(m.key == q.key, m.ts >= q.lo, m.ts <= q.hi))
        .where(compatible)
        .subquery()
    )
    return (
        select(pairs.c.i, pairs.c.exploit_id).where(pairs.c.rn <= CANDIDATES_PER_REPORT).order_by(pairs.c.i, pairs.c.rn)
    )


CANDIDATES = _candidates_query()


async def _query(
    session: AsyncSession, rows: list[tuple[int, str, float, float, float, float | None]]
) -> list[tuple[int, int]]:
    await session.execute(CREATE_PROBE)
    await session.execute(delete(PROBE))
    await session.execute(
        insert(PROBE), [dict(zip(("i", "key", "lo", "hi", "ts", "amt"), r, strict=True)) for r in rows]
    )
    result = [(int(i), int(exploit_id)) for i, exploit_id in await session.execute(CANDIDATES)]
    await session.execute(delete(PROBE))
    return result


async def sources_of(session: AsyncSession, exploit_ids: Iterable[int]) -> dict[int, set[str]]:
    ids = list(set(exploit_ids))
    found: dict[int, set[str]] = {}
    for start in range(0, len(ids), 5000):
        rows = await session.execute(
            select(ReportRow.exploit_id, ReportRow.source).where(ReportRow.exploit_id.in_(ids[start : start + 5000]))
        )
        for exploit_id, source in rows:
            found.setdefault(exploit_id, set()).add(source)
    return found


@dataclass
class NewIncident:
    """Reports of this batch that form an incident not stored yet."""

    reports: list[Report] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)

    def add(self, report: Report) -> None:
        self.reports.append(report)
        self.sources.add(report.source)


class BatchIncidents:
    """New incidents being formed in one batch, findable by tx hash and by (loose key, day)."""

    def __init__(self) -> None:
        self.groups: list[NewIncident] = []
        self.by_tx: dict[str, NewIncident] = {}
        self.by_key_day: dict[tuple[str, int], list[NewIncident]] = {}

    def by_tx_of(self, hashes: Sequence[str]) -> NewIncident | None:
        return next((self.by_tx[tx] for tx in hashes if tx in self.by_tx), None)

    def find(self, report: Report) -> NewIncident | None:
        """The batch's best new incident for `report` under the fuzzy rule, if any."""
        key = protocol_match_key(report.protocol)
        if not key:
            return None
        ts = report.timestamp.timestamp()
        day = int(ts // 86_400)
        best: tuple[tuple[float, float], NewIncident] | None = None
        for near in range(day - WINDOW.days - 1, day + WINDOW.days + 2):
            for group in self.by_key_day.get((key, near), ()):
                first = group.reports[0]
                if report.source in group.sources or abs(first.timestamp - report.timestamp) > WINDOW:
                    continue
                if amounts_compatible(report.amount_usd, first.amount_usd):
                    rank = _rank(ts, report.amount_usd, first.timestamp.timestamp(), first.amount_usd)
                    if best is None or rank < best[0]:
                        best = (rank, group)
        return best[1] if best else None

    def add(self, report: Report, hashes: Sequence[str], group: NewIncident | None = None) -> NewIncident:
        if group is None:
            group = NewIncident()
            self.groups.append(group)
            day = int(report.timestamp.timestamp() // 86_400)
            self.by_key_day.setdefault((protocol_match_key(report.protocol), day), []).append(group)
        group.add(report)
        for tx in hashes:
            self.by_tx.setdefault(tx, group)
        return group


async def write_merge_keys(
    session: AsyncSession, facts: dict[int, tuple[datetime, float | None, set[str]]], rewrite: set[int]
) -> None:
    """Key rows of the given exploits: (incident time, USD loss, protocol names).

    Exploits in `rewrite` (their time or loss changed) lose their old rows first; for the others the keys
    of newly attached names are added and existing rows kept (same time and loss).
    """
    ids = [i for i in facts if i in rewrite]
    for start in range(0, len(ids), 5000):
        await session.execute(delete(MergeKey).where(MergeKey.exploit_id.in_(ids[start : start + 5000])))
    rows = [
        {"exploit_id": exploit_id, "key": key, "ts": ts.timestamp(), "amount": amount}
        for exploit_id, (ts, amount, names) in facts.items()
        for key in {protocol_match_key(name) for name in names} - {""}
    ]
    if rows:
        table = cast(Table, MergeKey.__table__)
        dialect = session.get_bind().dialect.name
        statement = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        await session.execute(statement.on_conflict_do_nothing(index_elements=["exploit_id", "key"]), rows)
