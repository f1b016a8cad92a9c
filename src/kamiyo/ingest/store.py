"""Store reports: attach each to its incident (or create one), re-derive facts, emit events, refresh stats.

This is the one write path for exploits: the bundled seed, `kamiyo import`, source ingestion and
community submissions all come through `store_reports`, in the caller's transaction.

Per batch of BATCH reports, with a fixed number of queries: a known (source, source_ref) is an
update; a new report joins the incident of a shared tx hash, else the one the fuzzy rule of
`kamiyo.ingest.matching` picks (same loose protocol key, ±3 days, compatible amount, no report
from the same source yet), else a new incident, formed with the batch's other reports of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.cache import bump_data_version
from kamiyo.exploits.models import Exploit, ExploitEvent
from kamiyo.exploits.models import Report as ReportRow
from kamiyo.ingest.matching import BatchIncidents, NewIncident, fuzzy_candidates, sources_of, write_merge_keys
from kamiyo.ingest.merge import DERIVED_FIELDS, derive, material_changes
from kamiyo.ingest.summaries import SummaryDeltas
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import Report

BATCH = 5000
MergeFacts = tuple[datetime, float | None, set[str]]
# Rows of `kamiyo import` are exploits in the operator's own shape, one incident each: they join stored
# incidents by tx hash only (later reports of other sources still find them by the fuzzy rule).
EXACT_ONLY_SOURCES = frozenset({"import"})
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


DERIVE_COLUMNS = (
    ReportRow.exploit_id, ReportRow.source, ReportRow.protocol, ReportRow.timestamp, ReportRow.chain,
    ReportRow.tx_hash, ReportRow.amount_usd, ReportRow.amount_text, ReportRow.recovered_usd,
    ReportRow.category, ReportRow.description, ReportRow.attacker_address,
)  # fmt: skip
CHUNK = 5000


async def _rederive(
    session: AsyncSession, exploit_ids: Iterable[int], now: datetime
) -> tuple[list[tuple[int, dict[str, Any], dict[str, Any]]], dict[int, MergeFacts], set[int]]:
    """Recompute touched exploits from all their reports (plain rows: no ORM state to go stale).

    Returns (id, before, after) of the changed ones, the merge-key facts of every touched one, and the
    ids whose time or loss changed (their key rows are rewritten).
    """
    ids = list(exploit_ids)
    reports: dict[int, list[Any]] = {}
    exploits: dict[int, Any] = {}
    derived = [c for c in Exploit.__table__.c if c.name in DERIVED_FIELDS]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        # In report order: equally trusted reports then always resolve the same way, whatever the engine's row order.
        stmt = select(*DERIVE_COLUMNS).where(ReportRow.exploit_id.in_(chunk)).order_by(ReportRow.id)
        for row in await session.execute(stmt):
            reports.setdefault(row.exploit_id, []).append(row)
        for row in await session.execute(select(Exploit.id, *derived).where(Exploit.id.in_(chunk))):
            exploits[row.id] = row._mapping
    changed = []
    keys: dict[int, MergeFacts] = {}
    moved: set[int] = set()
    for exploit_id, rows in reports.items():
        after = derive(rows)
        before = {k: exploits[exploit_id][k] for k in after}
        keys[exploit_id] = (after["timestamp"], after["amount_usd"], {r.protocol for r in rows})
        if (before["timestamp"], before["amount_usd"]) != (after["timestamp"], after["amount_usd"]):
            moved.add(exploit_id)
        if before != after:
            changed.append((exploit_id, before, after))
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for exploit_id, before, after in changed:  # one executemany per set of changed columns: an amount-only
        diff = frozenset(k for k in after if after[k] != before[k])  # change must not fire the FTS triggers
        groups.setdefault(diff, []).append({"id": exploit_id, **{k: after[k] for k in diff}, "updated_at": now})
    for rows in groups.values():
        await session.execute(update(Exploit), rows)
    return changed, keys, moved


def _place(
    fresh: Sequence[Report],
    by_tx: dict[str, int],
    candidates: dict[int, list[int]],
    sources: dict[int, set[str]],
) -> tuple[list[tuple[Report, int]], BatchIncidents]:
    """Each fresh report to a stored exploit or to a new incident of this batch, in this order:
    a shared tx hash (stored, then in the batch), the best stored fuzzy candidate without a report
    from the same source, the best fuzzy match among the batch's new incidents, else a new incident."""
    attach: list[tuple[Report, int]] = []
    incidents = BatchIncidents()
    for position, report in enumerate(fresh):
        hashes = _tx_hashes(report)
        exploit_id = next((by_tx[h] for h in hashes if h in by_tx), None)
        group = incidents.by_tx_of(hashes) if exploit_id is None else None
        if exploit_id is None and group is None:
            exploit_id = next(
                (e for e in candidates.get(position, []) if report.source not in sources.get(e, ())), None
            )
        if exploit_id is None and group is None and report.source not in EXACT_ONLY_SOURCES:
            group = incidents.find(report)
        if exploit_id is not None:
            attach.append((report, exploit_id))
            sources.setdefault(exploit_id, set()).add(report.source)
            for h in hashes:
                by_tx.setdefault(h, exploit_id)
        else:
            incidents.add(report, hashes, group)
    return attach, incidents


async def _store_batch(
    session: AsyncSession,
    batch: Sequence[Report],
    notify_since: datetime | None,
    now: datetime,
    deltas: SummaryDeltas,
) -> StoreResult:
    result = StoreResult()
    batch = list({(r.source, r.source_ref): r for r in batch}.values())  # one row per key: the last wins
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

    attach, incidents = await _match(session, fresh)
    touched.update(exploit_id for _, exploit_id in attach)
    keys = await _insert_incidents(session, incidents.groups, attach, notify_since, now, deltas, result)
    if attach:
        await session.execute(
            insert(cast(Table, ReportRow.__table__)), [_report_values(r, eid, now) for r, eid in attach]
        )
    result.reports_new += len(attach)

    changed, touched_keys, moved = await _rederive(session, touched, now)
    keys.update(touched_keys)
    material = {exploit_id: material_changes(before, after) for exploit_id, before, after in changed}
    announced = await _announced(session, [e for e, c in material.items() if c]) if notify_since else set()
    for exploit_id, before, after in changed:
        deltas.changed(before, after)
        result.updated.append(exploit_id)
        if exploit_id in announced:
            session.add(
                ExploitEvent(
                    exploit_id=exploit_id, type="exploit.updated", changes=material[exploit_id], created_at=now
                )
            )
            result.events += 1
    await write_merge_keys(session, keys, moved)
    await session.flush()
    return result


async def _match(session: AsyncSession, fresh: list[Report]) -> tuple[list[tuple[Report, int]], BatchIncidents]:
    """Stored incidents by tx hash, fuzzy candidates for the rest (one query each), then placement."""
    by_tx = await _exploits_by_tx(session, {h for r in fresh for h in _tx_hashes(r)})
    untied = [
        i
        for i, r in enumerate(fresh)
        if r.source not in EXACT_ONLY_SOURCES and not any(h in by_tx for h in _tx_hashes(r))
    ]
    found = await fuzzy_candidates(session, [fresh[i] for i in untied])
    candidates = {untied[i]: ids for i, ids in found.items()}
    sources = await sources_of(session, {e for ids in candidates.values() for e in ids})
    return _place(fresh, by_tx, candidates, sources)


async def _insert_incidents(
    session: AsyncSession,
    groups: list[NewIncident],
    attach: list[tuple[Report, int]],
    notify_since: datetime | None,
    now: datetime,
    deltas: SummaryDeltas,
    result: StoreResult,
) -> dict[int, MergeFacts]:
    """Insert one exploit per new incident, queue its reports in `attach`, emit `exploit.created`."""
    keys: dict[int, MergeFacts] = {}
    if not groups:
        return keys
    facts = [
        derive(group.reports) | {"verified_on_chain": False, "first_seen_at": now, "updated_at": now}
        for group in groups
    ]
    for group, exploit_id, fact in zip(groups, await _insert_exploits(session, facts), facts, strict=True):
        attach.extend((report, exploit_id) for report in group.reports)
        keys[exploit_id] = (fact["timestamp"], fact["amount_usd"], {r.protocol for r in group.reports})
        deltas.added(fact)
        if not fact["is_test"]:
            result.created.append(exploit_id)
        if notify_since is not None and fact["timestamp"] >= notify_since and not fact["is_test"]:
            session.add(ExploitEvent(exploit_id=exploit_id, type="exploit.created", changes={}, created_at=now))
            result.events += 1
    return keys


async def _insert_exploits(session: AsyncSession, facts: list[dict[str, Any]]) -> list[int]:
    """Insert exploit rows, ids in order. SQLite cannot order a multi-row RETURNING, which would cost one
    statement per row: there the first row's RETURNING takes the write lock and gives the next rowid,
    and the rest go in one executemany with the following ids (no other writer can interleave)."""
    if session.get_bind().dialect.name != "sqlite" or len(facts) < 2:
        inserted = await session.execute(
            insert(cast(Table, Exploit.__table__)).returning(Exploit.id, sort_by_parameter_order=True), facts
        )
        return list(inserted.scalars())
    first = (await session.execute(insert(Exploit).values(**facts[0]).returning(Exploit.id))).scalar_one()
    ids = list(range(first, first + len(facts)))
    await session.execute(
        insert(cast(Table, Exploit.__table__)), [fact | {"id": i} for fact, i in zip(facts[1:], ids[1:], strict=True)]
    )
    return ids


async def _announced(session: AsyncSession, exploit_ids: list[int]) -> set[int]:
    """Those of `exploit_ids` that had an `exploit.created` event (only those alert on updates)."""
    found: set[int] = set()
    for start in range(0, len(exploit_ids), 5000):
        rows = await session.execute(
            select(ExploitEvent.exploit_id)
            .where(
                ExploitEvent.exploit_id.in_(exploit_ids[start : start + 5000]), ExploitEvent.type == "exploit.created"
            )
            .distinct()
        )
        found.update(rows.scalars())
    return found


async def store_reports(
    session: AsyncSession,
    reports: Iterable[Report],
    *,
    notify_since: datetime | None = None,
    now: datetime | None = None,
) -> StoreResult:
    """Store reports in batches. `notify_since`: incidents at or after it emit events; None keeps it silent."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "sqlite":
        # Take SQLite's write lock before reading, so a concurrent commit (the delivery worker, another
        # writer) makes this transaction wait its turn instead of failing with a stale read snapshot.
        await session.execute(text("UPDATE kamiyo_meta SET value = value WHERE 1 = 0"))
    result = StoreResult()
    deltas = SummaryDeltas()
    batch: list[Report] = []
    for report in reports:
        batch.append(report)
        if len(batch) >= BATCH:
            result.add(await _store_batch(session, batch, notify_since, now, deltas))
            batch = []
    if batch:
        result.add(await _store_batch(session, batch, notify_since, now, deltas))
    await deltas.apply(session)
    if result.reports_new or result.reports_changed:
        await bump_data_version(session)
    return result
