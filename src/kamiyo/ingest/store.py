"""Store reports: attach each to its incident (or create one), re-derive facts, emit events, refresh stats.

This is the one write path for exploits: the bundled seed, `kamiyo import`, source ingestion and
community submissions all come through `store_reports`, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.cache import response_cache
from kamiyo.exploits.models import Exploit, ExploitEvent
from kamiyo.exploits.models import Report as ReportRow
from kamiyo.exploits.stats import refresh_days
from kamiyo.ingest.merge import derive, material_changes
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import Report

BATCH = 2000
REPORT_FACTS = (
    "url",
    "tx_hash",
    "chain",
    "protocol",
    "amount_usd",
    "amount_text",
    "recovered_usd",
    "timestamp",
    "category",
    "description",
    "attacker_address",
)


@dataclass
class StoreResult:
    reports_new: int = 0
    reports_changed: int = 0
    reports_unchanged: int = 0
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    events: int = 0

    def add(self, other: StoreResult) -> None:
        self.reports_new += other.reports_new
        self.reports_changed += other.reports_changed
        self.reports_unchanged += other.reports_unchanged
        self.created += other.created
        self.updated += other.updated
        self.events += other.events


def _report_values(report: Report, exploit_id: int, now: datetime) -> dict[str, Any]:
    return {
        "exploit_id": exploit_id,
        "source": report.source,
        "source_ref": report.source_ref,
        "url": report.url,
        "reported_at": report.reported_at or now,
        "seen_at": now,
        "tx_hash": report.tx_hash,
        "chain": report.chain,
        "protocol": report.protocol,
        "amount_usd": report.amount_usd,
        "amount_text": report.amount_text,
        "recovered_usd": report.recovered_usd,
        "timestamp": report.timestamp,
        "category": report.category,
        "description": report.description,
        "attacker_address": report.attacker_address,
        "raw": report.raw,
    }


def _tx_hashes(report: Report) -> list[str]:
    hashes: list[str] = [report.tx_hash] if report.tx_hash else []
    return hashes + [h for h in report.tx_hashes if h and h != report.tx_hash]


async def _existing_reports(session: AsyncSession, batch: Sequence[Report]) -> dict[tuple[str, str], Any]:
    by_source: dict[str, list[str]] = {}
    for report in batch:
        by_source.setdefault(report.source, []).append(report.source_ref)
    found: dict[tuple[str, str], Any] = {}
    for source, refs in by_source.items():
        rows = await session.execute(
            select(ReportRow).where(ReportRow.source == source, ReportRow.source_ref.in_(refs))
        )
        for row in rows.scalars():
            found[(row.source, row.source_ref)] = row
    return found


async def _exploits_by_tx(session: AsyncSession, hashes: set[str]) -> dict[str, int]:
    if not hashes:
        return {}
    found: dict[str, int] = {}
    rows = await session.execute(select(Exploit.tx_hash, Exploit.id).where(Exploit.tx_hash.in_(hashes)))
    for tx, exploit_id in rows:
        if tx:
            found[tx] = exploit_id
    missing = hashes - found.keys()
    if missing:
        rows = await session.execute(
            select(ReportRow.tx_hash, ReportRow.exploit_id).where(ReportRow.tx_hash.in_(missing))
        )
        for tx, exploit_id in rows:
            if tx:
                found.setdefault(tx, exploit_id)
    return found


async def _rederive(
    session: AsyncSession, exploit_ids: Iterable[int], now: datetime
) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """Recompute touched exploits from all their reports; returns (id, before, after) for the changed ones."""
    ids = list(exploit_ids)
    if not ids:
        return []
    reports: dict[int, list[ReportRow]] = {}
    for row in (await session.execute(select(ReportRow).where(ReportRow.exploit_id.in_(ids)))).scalars():
        reports.setdefault(row.exploit_id, []).append(row)
    exploits = {e.id: e for e in (await session.execute(select(Exploit).where(Exploit.id.in_(ids)))).scalars()}
    changed = []
    for exploit_id, rows in reports.items():
        exploit = exploits[exploit_id]
        after = derive(rows)
        before = {k: getattr(exploit, k) for k in after}
        if before != after:
            await session.execute(update(Exploit).where(Exploit.id == exploit_id).values(**after, updated_at=now))
            changed.append((exploit_id, before, after))
    return changed


async def _store_batch(
    session: AsyncSession,
    batch: Sequence[Report],
    notify_since: datetime | None,
    now: datetime,
    days: set[date],
) -> StoreResult:
    result = StoreResult()
    existing = await _existing_reports(session, batch)
    touched: set[int] = set()
    fresh: list[Report] = []
    for report in batch:
        row = existing.get((report.source, report.source_ref))
        if row is None:
            fresh.append(report)
            continue
        values = _report_values(report, row.exploit_id, now)
        if all(getattr(row, k) == values[k] for k in REPORT_FACTS) and row.raw == report.raw:
            result.reports_unchanged += 1
            continue
        await session.execute(
            update(ReportRow).where(ReportRow.id == row.id).values({k: values[k] for k in (*REPORT_FACTS, "raw")})
        )
        touched.add(row.exploit_id)
        result.reports_changed += 1

    by_tx = await _exploits_by_tx(session, {h for r in fresh for h in _tx_hashes(r)})
    new_groups: list[list[Report]] = []
    group_of_tx: dict[str, list[Report]] = {}
    attach: list[tuple[Report, int]] = []
    for report in fresh:
        hashes = _tx_hashes(report)
        exploit_id = next((by_tx[h] for h in hashes if h in by_tx), None)
        if exploit_id is not None:
            attach.append((report, exploit_id))
            touched.add(exploit_id)
            continue
        group = next((group_of_tx[h] for h in hashes if h in group_of_tx), None)
        if group is None:
            group = []
            new_groups.append(group)
        group.append(report)
        for h in hashes:
            group_of_tx.setdefault(h, group)

    if new_groups:
        facts = [
            derive(group) | {"verified_on_chain": False, "first_seen_at": now, "updated_at": now}
            for group in new_groups
        ]
        inserted = await session.execute(insert(Exploit).returning(Exploit.id, sort_by_parameter_order=True), facts)
        new_ids = list(inserted.scalars())
        for group, exploit_id, fact in zip(new_groups, new_ids, facts, strict=True):
            attach.extend((report, exploit_id) for report in group)
            days.add(fact["timestamp"].date())
            if not fact["is_test"]:
                result.created.append(exploit_id)
            if notify_since is not None and fact["timestamp"] >= notify_since and not fact["is_test"]:
                session.add(ExploitEvent(exploit_id=exploit_id, type="exploit.created", changes={}, created_at=now))
                result.events += 1
    if attach:
        await session.execute(insert(ReportRow), [_report_values(r, eid, now) for r, eid in attach])
    result.reports_new += len(attach)

    for exploit_id, before, after in await _rederive(session, touched, now):
        days.update({before["timestamp"].date(), after["timestamp"].date()})
        result.updated.append(exploit_id)
        changes = material_changes(before, after)
        if changes and notify_since is not None and await _was_announced(session, exploit_id):
            session.add(ExploitEvent(exploit_id=exploit_id, type="exploit.updated", changes=changes, created_at=now))
            result.events += 1
    await session.flush()
    return result


async def _was_announced(session: AsyncSession, exploit_id: int) -> bool:
    found = await session.execute(
        select(ExploitEvent.id)
        .where(ExploitEvent.exploit_id == exploit_id, ExploitEvent.type == "exploit.created")
        .limit(1)
    )
    return found.first() is not None


async def store_reports(
    session: AsyncSession,
    reports: Iterable[Report],
    *,
    notify_since: datetime | None = None,
    now: datetime | None = None,
) -> StoreResult:
    """Store reports in batches. `notify_since`: incidents at or after it emit events; None keeps it silent."""
    now = now or utcnow()
    result = StoreResult()
    days: set[date] = set()
    batch: list[Report] = []
    for report in reports:
        batch.append(report)
        if len(batch) >= BATCH:
            result.add(await _store_batch(session, batch, notify_since, now, days))
            batch = []
    if batch:
        result.add(await _store_batch(session, batch, notify_since, now, days))
    if days:
        await refresh_days(session, None if len(days) > 400 else days)
        response_cache.invalidate()
    return result
