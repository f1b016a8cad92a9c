"""Read queries only the dashboard needs: whole-span summaries, newest incidents, labelled addresses.

Like every service: a session and plain values in, plain data out, never a commit. Whole-span
numbers come from the maintained daily summaries (days × chains rows), never a scan of exploits.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

from cachetools import TTLCache
from sqlalchemy import String, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.filters import AnySelect, apply_sort
from kamiyo.exploits.models import DailyCategoryStat, DailyChainStat, Exploit, ReportRow, counted_loss, report_order
from kamiyo.exploits.service import exploits_by_ids
from kamiyo.kit.timeutil import utcnow


@dataclass(slots=True)
class Totals:
    days: int
    exploits: int
    loss_usd: float
    recovered_usd: float


@dataclass(slots=True)
class Overview:
    """All-time totals: a monthly loss series (gap months filled) and breakdowns by chain and category."""

    months: list[dict[str, Any]] = field(default_factory=list)
    by_chain: list[dict[str, Any]] = field(default_factory=list)
    by_category: list[dict[str, Any]] = field(default_factory=list)
    total_exploits: int = 0
    total_loss_usd: float = 0.0
    total_recovered_usd: float = 0.0


def _month_range(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:7])
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _ranked(groups: dict[str, list[float]], key: str) -> list[dict[str, Any]]:
    items = sorted(groups.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    return [{key: name, "count": int(v[0]), "loss_usd": float(v[1])} for name, v in items if v[0]]


OVERVIEW_TTL_S = 60.0
# per database (tests and tools open many): the data version it was computed for and the overview
_overviews: TTLCache[str, tuple[tuple[Any, ...], Overview]] = TTLCache(maxsize=16, ttl=OVERVIEW_TTL_S)


async def cached_overview(session: AsyncSession) -> Overview:
    """`overview`, recomputed only when an exploit was added or changed (or after a minute).

    The whole-span aggregate reads every summary row (days × chains), which grows with the years
    covered; the change check is two index look-ups.
    """
    version = tuple(
        (
            await session.execute(
                select(
                    select(func.max(Exploit.updated_at)).scalar_subquery(),
                    select(func.max(Exploit.id)).scalar_subquery(),
                )
            )
        ).one()
    )
    scope = session.get_bind().engine.url.render_as_string(hide_password=True)
    cached = _overviews.get(scope)
    if cached and cached[0] == version:
        return cached[1]
    result = await overview(session)
    _overviews[scope] = (version, result)
    return result


async def overview(session: AsyncSession) -> Overview:
    month = func.substr(cast(DailyChainStat.day, String(10)), 1, 7)
    rows = await session.execute(
        select(
            month,
            DailyChainStat.chain,
            func.sum(DailyChainStat.count),
            func.sum(DailyChainStat.loss_usd),
            func.sum(DailyChainStat.recovered_usd),
        ).group_by(month, DailyChainStat.chain)
    )
    by_month: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    by_chain: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    result = Overview()
    for month_key, chain, count, loss, recovered in rows:
        for bucket in (by_month[month_key], by_chain[chain]):
            bucket[0] += int(count or 0)
            bucket[1] += float(loss or 0.0)
        result.total_recovered_usd += float(recovered or 0.0)
    categories = await session.execute(
        select(
            DailyCategoryStat.category, func.sum(DailyCategoryStat.count), func.sum(DailyCategoryStat.loss_usd)
        ).group_by(DailyCategoryStat.category)
    )
    by_category = {name: [int(count or 0), float(loss or 0.0)] for name, count, loss in categories}
    if by_month:
        keys = _month_range(min(by_month), max(by_month))
        result.months = [
            {"month": k, "count": int(by_month[k][0]), "loss_usd": by_month[k][1]}
            if k in by_month
            else {"month": k, "count": 0, "loss_usd": 0.0}
            for k in keys
        ]
    result.by_chain = _ranked(by_chain, "chain")
    result.by_category = _ranked(by_category, "category")
    result.total_exploits = sum(int(v[0]) for v in by_chain.values())
    result.total_loss_usd = sum(v[1] for v in by_chain.values())
    return result


async def window_totals(session: AsyncSession, windows: tuple[int, ...], now: datetime | None = None) -> list[Totals]:
    """Exploits, USD lost and recovered in the last N days, for several N at once.

    Same windows and numbers as `compute_stats` (summaries for whole days, raw rows for the partial
    first day), without its per-window "largest" query, which scans an index for short windows.
    """
    now = now or utcnow()
    first = (now - timedelta(days=max(windows))).date() + timedelta(days=1)
    per_day = await session.execute(
        select(
            DailyChainStat.day,
            func.sum(DailyChainStat.count),
            func.sum(DailyChainStat.loss_usd),
            func.sum(DailyChainStat.recovered_usd),
        )
        .where(DailyChainStat.day.between(first, now.date()))
        .group_by(DailyChainStat.day)
    )
    days = [(_as_date(d), int(c or 0), float(loss or 0.0), float(rec or 0.0)) for d, c, loss, rec in per_day]
    result = []
    for window in windows:
        since = now - timedelta(days=window)
        edge_end = datetime.combine(since.date() + timedelta(days=1), time.min, tzinfo=UTC)
        edge = (
            await session.execute(
                select(func.count(), func.sum(counted_loss()), func.sum(Exploit.recovered_usd)).where(
                    Exploit.is_test.is_(False), Exploit.timestamp >= since, Exploit.timestamp < edge_end
                )
            )
        ).one()
        full = [d for d in days if d[0] > since.date()]
        result.append(
            Totals(
                days=window,
                exploits=sum(d[1] for d in full) + int(edge[0] or 0),
                loss_usd=sum(d[2] for d in full) + float(edge[1] or 0.0),
                recovered_usd=sum(d[3] for d in full) + float(edge[2] or 0.0),
            )
        )
    return result


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def unfiltered_page(session: AsyncSession, *, sort: str, page: int, page_size: int) -> dict[str, Any]:
    """A page of all exploits, as `list_exploits` answers it, with the total from the maintained summaries.

    Counting a million rows costs a table scan (~0.5 s on SQLite); the summaries hold the same number.
    """
    stmt: AnySelect = select(Exploit.id).where(Exploit.is_test.is_(False))
    stmt = apply_sort(stmt, sort).offset((page - 1) * page_size).limit(page_size + 1)
    ids = list((await session.execute(stmt)).scalars())
    total = (await cached_overview(session)).total_exploits
    return {
        "data": await exploits_by_ids(session, ids[:page_size]),
        "page": page,
        "page_size": page_size,
        "total": total,
        "has_more": len(ids) > page_size,
    }


async def newest_exploits(session: AsyncSession, limit: int = 8) -> list[dict[str, Any]]:
    """The newest incidents without counting the table (the home page must stay cheap at any size)."""
    ids = (
        await session.execute(
            select(Exploit.id)
            .where(Exploit.is_test.is_(False))
            .order_by(Exploit.timestamp.desc(), Exploit.id.desc())
            .limit(limit)
        )
    ).scalars()
    return await exploits_by_ids(session, list(ids))


# Address-like facts a source may state, under these keys of its raw report, and how to call them.
ADDRESS_KEYS = (
    ("attacker", "Attacker"),
    ("attacker_address", "Attacker"),
    ("attack_contract", "Attack contract"),
    ("vulnerable_contract", "Vulnerable contract"),
    ("victim", "Victim"),
)
TX_KEYS = ("attack_tx", "attack_txs", "tx_hashes")
_NOT_AN_ADDRESS = {"", "n/a", "na", "none", "null", "unknown", "-"}


@dataclass(slots=True)
class Labelled:
    value: str
    labels: list[str]
    sources: list[str]


def _clean(value: str) -> str:
    """An explorer URL stands for the address or hash at its end."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        value = urlsplit(value).path.rstrip("/").rsplit("/", 1)[-1]
    return value


def _values(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    cleaned = [_clean(v) for v in items if isinstance(v, str)]
    return [v for v in cleaned if v.lower() not in _NOT_AN_ADDRESS]


def _add(found: dict[str, Labelled], value: str, label: str, source: str) -> None:
    key = value.lower()
    entry = found.setdefault(key, Labelled(value, [], []))
    if label not in entry.labels:
        entry.labels.append(label)
    if source not in entry.sources:
        entry.sources.append(source)


def _raw_parts(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The report itself plus any structured sub-records (DeFiHackLabs keeps PoC headers in `keyinfo`)."""
    parts = [raw]
    for key in ("keyinfo", "merged"):
        parts += [p for p in raw.get(key) or [] if isinstance(p, dict)]
    return parts


async def labelled_facts(session: AsyncSession, exploit_id: int) -> tuple[list[Labelled], list[Labelled]]:
    """(addresses, transactions) named by any report of the exploit, each with its role and sources."""
    rows = await session.execute(
        select(ReportRow.source, ReportRow.attacker_address, ReportRow.tx_hash, ReportRow.raw)
        .where(ReportRow.exploit_id == exploit_id)
        .order_by(*report_order())
    )
    addresses: dict[str, Labelled] = {}
    txs: dict[str, Labelled] = {}
    for source, attacker, tx_hash, raw in rows:
        if attacker:
            _add(addresses, attacker, "Attacker", source)
        if tx_hash:
            _add(txs, tx_hash, "Attack transaction", source)
        for part in _raw_parts(raw if isinstance(raw, dict) else {}):
            for key, label in ADDRESS_KEYS:
                for value in _values(part.get(key)):
                    _add(addresses, value, label, source)
            for key in TX_KEYS:
                for value in _values(part.get(key)):
                    _add(txs, value, "Attack transaction", source)
    return list(addresses.values()), list(txs.values())
