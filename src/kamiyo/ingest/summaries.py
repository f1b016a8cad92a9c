"""Keep the daily summaries (`exploit_daily_chain`, `exploit_daily_category`) current by deltas.

Recomputing a day reads every exploit of that day; a batch of reports spread over years would re-read
the whole table each time. Instead each stored batch adds its inserted exploits and, for changed ones,
subtracts the old facts and adds the new, with one upsert per table. Only cells an exploit left (its day,
time or chain changed) get their `last_at` (a maximum, which a delta cannot lower) read again; emptied
cells disappear. `kamiyo.exploits.stats.refresh_days` stays the ground truth (a test compares them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.db import UTCDateTime
from kamiyo.exploits.models import DailyCategoryStat, DailyChainStat, Exploit, is_public
from kamiyo.ingest.merge import counted_loss

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The latest incident time of one (day, chain) cell, read through ix_exploits_chain_timestamp.
RECOMPUTE_LAST_AT = (
    update(cast(Table, DailyChainStat.__table__))
    .where(DailyChainStat.day == bindparam("b_day"), DailyChainStat.chain == bindparam("b_chain"))
    .values(
        last_at=select(func.max(Exploit.timestamp))
        .where(
            Exploit.chain == bindparam("b_chain"),
            Exploit.timestamp >= bindparam("b_lo", type_=UTCDateTime()),
            Exploit.timestamp < bindparam("b_hi", type_=UTCDateTime()),
            is_public(),
        )
        .scalar_subquery()
    )
)


def _last_at_params(day: date, chain: str) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {"b_day": day, "b_chain": chain, "b_lo": start, "b_hi": start + timedelta(days=1)}


@dataclass
class _Cell:
    count: int = 0
    loss_usd: float = 0.0
    recovered_usd: float = 0.0
    last_at: datetime | None = None

    def add(self, facts: dict[str, Any], sign: int) -> None:
        self.count += sign
        self.loss_usd += sign * counted_loss(facts)
        self.recovered_usd += sign * (facts["recovered_usd"] or 0.0)
        if sign > 0 and (self.last_at is None or facts["timestamp"] > self.last_at):
            self.last_at = facts["timestamp"]


class SummaryDeltas:
    """Collects +/- facts of exploits during one batch; `apply` writes them."""

    def __init__(self) -> None:
        self.chain: dict[tuple[date, str], _Cell] = defaultdict(_Cell)
        self.category: dict[tuple[date, str], _Cell] = defaultdict(_Cell)
        self.left: set[tuple[date, str]] = set()  # (day, chain) cells an exploit left: their last_at may be stale

    def added(self, facts: dict[str, Any]) -> None:
        if not facts["is_test"]:
            day = facts["timestamp"].date()
            self.chain[(day, facts["chain"])].add(facts, 1)
            self.category[(day, facts["category"])].add(facts, 1)

    def changed(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        if not before["is_test"]:
            day = before["timestamp"].date()
            self.chain[(day, before["chain"])].add(before, -1)
            self.category[(day, before["category"])].add(before, -1)
            if before["timestamp"] != after["timestamp"] or before["chain"] != after["chain"] or after["is_test"]:
                self.left.add((day, before["chain"]))
        self.added(after)

    async def apply(self, session: AsyncSession) -> None:
        dialect = session.get_bind().dialect.name
        await _upsert(session, DailyChainStat, "chain", self.chain, dialect, last_at=True)
        await _upsert(session, DailyCategoryStat, "category", self.category, dialect, last_at=False)
        for model in (DailyChainStat, DailyCategoryStat):
            await session.execute(delete(model).where(model.count <= 0))
        if self.left:
            await session.execute(RECOMPUTE_LAST_AT, [_last_at_params(day, chain) for day, chain in self.left])


async def _upsert(
    session: AsyncSession,
    model: Any,
    key: str,
    cells: dict[tuple[date, str], _Cell],
    dialect: str,
    *,
    last_at: bool,
) -> None:
    rows = [_row(day, name, cell, key, last_at) for (day, name), cell in cells.items() if _moves(cell)]
    if not rows:
        return
    insert = postgresql.insert(model) if dialect == "postgresql" else sqlite.insert(model)
    excluded = insert.excluded
    values: dict[str, Any] = {
        "count": model.count + excluded.count,
        "loss_usd": model.loss_usd + excluded.loss_usd,
        "recovered_usd": model.recovered_usd + excluded.recovered_usd,
    }
    if last_at:
        greatest = func.greatest if dialect == "postgresql" else func.max
        values["last_at"] = greatest(model.last_at, excluded.last_at)
    await session.execute(insert.on_conflict_do_update(index_elements=["day", key], set_=values), rows)


def _moves(cell: _Cell) -> bool:
    return bool(cell.count or cell.loss_usd or cell.recovered_usd or cell.last_at)


def _row(day: date, name: str, cell: _Cell, key: str, last_at: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "day": day,
        key: name,
        "count": cell.count,
        "loss_usd": cell.loss_usd,
        "recovered_usd": cell.recovered_usd,
    }
    if last_at:
        row["last_at"] = cell.last_at or EPOCH
    return row
