"""Which incident a new report belongs to, when no transaction hash decides it, and when a hash may decide.

Rule (also in the README's merge section), on the loose name key (`protocol_match_key`, with the curated
aliases), the incident time and the stated USD loss of two reports:
- the keys are equal;
- within a day of each other they are one incident whatever their amounts (a nominal and a realised figure
  of one hack can be 50x apart) and transactions (one attack is often many transactions);
- further apart, two reports that name different tx hashes on the same chain are two incidents;
  within WINDOW (3 days) their amounts must be compatible
  (`amounts_compatible`); within WIDE_WINDOW (14 days) the amounts must agree within WIDE_AMOUNT (20%);
- a source that dates its reports by publication (PUBLISHED_DATES: news and articles) may be up to
  WIDE_WINDOW later than the incident with a compatible amount.
A source lists one incident once, so a record never takes a second report of the same source: UwU Lend was
drained twice in four days. Among candidates the best pair wins across the whole batch (closest in time, then
in amount), not the first report to arrive.

A shared tx hash joins a report to an incident only when the chain agrees and the dates are within 3 days,
or the name key agrees (`tx_fits`); otherwise the two stay apart and the clash goes to `merge_conflicts`
(PoC headers have copy-pasted one hash into two different incidents).

Candidates come from `exploit_merge_keys` with one indexed query per batch (a VALUES list of the
batch's keys and windows joined on (key, ts)), the nearest few per report chosen in SQL.
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
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.models import Exploit, ReportRow
from kamiyo.ingest.models import MergeKey
from kamiyo.sources.base import Report
from kamiyo.vocabulary.protocols import amounts_compatible, protocol_match_key

DAY = timedelta(days=1)
WINDOW = timedelta(days=3)
WIDE_WINDOW = timedelta(days=14)
WIDE_AMOUNT = 0.2
TX_WINDOW = timedelta(days=3)
# Sources whose dates are publication dates (articles, news, posts), later than the incident.
PUBLISHED_DATES = frozenset(
    {"rekt", "defi_rekt", "cointelegraph", "cryptoslate", "decrypt", "theblock", "chainalysis_blog", "trm_blog",
     "doj", "reddit_defi_security"}
)  # fmt: skip
GENERAL_CHAINS = (None, "", "other", "multichain")
CANDIDATES_PER_REPORT = 8
QUERY_CHUNK = 5000  # probes per candidate query


@dataclass
class Side:
    """What the rule compares of a report, or of a stored incident."""

    keys: frozenset[str]
    ts: float
    amount: float | None
    chain: str | None = None
    hashes: frozenset[str] = frozenset()
    sources: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, report: Report) -> Side:
        key = protocol_match_key(report.protocol)
        return cls(
            keys=frozenset({key} - {""}),
            ts=report.timestamp.timestamp(),
            amount=report.amount_usd,
            chain=report.chain,
            hashes=frozenset(tx_hashes(report)),
            sources={report.source},
        )

    def absorb(self, other: Side) -> None:
        self.keys |= other.keys
        self.hashes |= other.hashes
        self.sources |= other.sources
        if self.chain in GENERAL_CHAINS:
            self.chain = other.chain
        if self.amount is None:
            self.amount = other.amount


def tx_hashes(report: Report) -> list[str]:
    hashes: list[str] = [report.tx_hash] if report.tx_hash else []
    return hashes + [h for h in report.tx_hashes if h and h != report.tx_hash]


def _published(sources: set[str]) -> bool:
    return bool(sources) and sources <= PUBLISHED_DATES


def _within(a: float | None, b: float | None, share: float) -> bool:
    if a is None or b is None or a <= 0 or b <= 0:
        return False
    low, high = sorted((a, b))
    return high <= low * (1 + share)


def fits(a: Side, b: Side) -> bool:
    """The fuzzy rule: may these two be one incident? (Source overlap is checked by the caller.)"""
    if not (a.keys & b.keys):
        return False
    gap = abs(a.ts - b.ts)
    if gap <= DAY.total_seconds():  # one attack is often many transactions within hours (Harvest: ~30)
        return True
    if a.hashes and b.hashes and not (a.hashes & b.hashes) and a.chain == b.chain and a.chain not in GENERAL_CHAINS:
        return False
    if gap <= WINDOW.total_seconds() and amounts_compatible(a.amount, b.amount):
        return True
    if gap <= WIDE_WINDOW.total_seconds():
        if _within(a.amount, b.amount, WIDE_AMOUNT):
            return True
        late = a if a.ts > b.ts else b
        return _published(late.sources) and amounts_compatible(a.amount, b.amount)
    return False


def tx_fits(a: Side, b: Side) -> bool:
    """May a shared tx hash join these two? Chain and date agree, or the name does."""
    if a.keys & b.keys:
        return True
    chains_agree = a.chain in GENERAL_CHAINS or b.chain in GENERAL_CHAINS or a.chain == b.chain
    return chains_agree and abs(a.ts - b.ts) <= TX_WINDOW.total_seconds()


def same_incident(
    a: tuple[str, datetime, float | None], b: tuple[str, datetime, float | None], *, same_source: bool = False
) -> bool:
    """The fuzzy rule on (protocol, time, USD loss) triples; the merge-quality test measures it."""
    if same_source:
        return False

    def side(t: tuple[str, datetime, float | None]) -> Side:
        key = protocol_match_key(t[0])
        return Side(keys=frozenset({key} - {""}), ts=t[1].timestamp(), amount=t[2])

    return fits(side(a), side(b))


def rank(a: Side, b: Side) -> tuple[bool, float, float]:
    """Smaller is a better pair: compatible amounts first (a same-day pair may disagree 50x, but one that agrees
    is likelier), then the time gap in whole days, then how far apart the amounts are."""
    gap = abs(a.ts - b.ts) // 86_400
    if a.amount is None or b.amount is None or a.amount <= 0 or b.amount <= 0:
        return False, gap, math.inf
    return not amounts_compatible(a.amount, b.amount), gap, abs(math.log(a.amount / b.amount))


async def fuzzy_candidates(session: AsyncSession, reports: Sequence[Report]) -> dict[int, list[int]]:
    """Position in `reports` -> up to CANDIDATES_PER_REPORT stored exploit ids, best first."""
    found: dict[int, list[int]] = {}
    for start in range(0, len(reports), QUERY_CHUNK):
        rows = []
        for i, report in enumerate(reports[start : start + QUERY_CHUNK], start=start):
            key = protocol_match_key(report.protocol)
            if key:
                ts = report.timestamp.timestamp()
                span = WIDE_WINDOW.total_seconds()
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
    rank = func.row_number().over(partition_by=q.i, order_by=(func.abs(m.ts - q.ts), m.exploit_id)).label("rn")
    pairs = (
        select(q.i, m.exploit_id, rank)
        .select_from(PROBE)
        .join(MergeKey.__table__, and_(m.key == q.key, m.ts >= q.lo, m.ts <= q.hi))
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


async def stored_sides(session: AsyncSession, exploit_ids: Iterable[int]) -> dict[int, Side]:
    """What the rule compares of stored incidents: merge keys, time and loss, chain, every tx hash and source."""
    ids = list(set(exploit_ids))
    found: dict[int, Side] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows = await session.execute(
            select(Exploit.id, Exploit.timestamp, Exploit.amount_usd, Exploit.chain).where(Exploit.id.in_(chunk))
        )
        for exploit_id, ts, amount, chain in rows:
            found[exploit_id] = Side(keys=frozenset(), ts=ts.timestamp(), amount=amount, chain=chain)
        for exploit_id, key in await session.execute(
            select(MergeKey.exploit_id, MergeKey.key).where(MergeKey.exploit_id.in_(chunk))
        ):
            found[exploit_id].keys |= {key}
        reports = select(ReportRow.exploit_id, ReportRow.source, ReportRow.tx_hash)
        for exploit_id, source, tx in await session.execute(reports.where(ReportRow.exploit_id.in_(chunk))):
            side = found[exploit_id]
            side.sources.add(source)
            if tx:
                side.hashes |= {tx}
    return found


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
