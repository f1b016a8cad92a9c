"""Store reports: attach each to its incident (or create one), re-derive facts, emit events, refresh stats.

This is the one write path for exploits: the bundled seed, `kamiyo import`, source ingestion and
community submissions all come through `store_reports`, in the caller's transaction.

Per batch of BATCH reports, with a fixed number of queries: a known (source, source_ref) is an
update (an imported one leaves the stored report as it is); new reports are placed by
`kamiyo.ingest.placement` (a fitting shared tx hash, else the best fuzzy pair of the batch, else a new
incident formed with the batch's other reports of it), then every touched incident is re-derived.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.cache import bump_data_version
from kamiyo.exploits.models import CORRECTION_REF, Exploit, ExploitEvent, MergeConflict, ReportRow, is_correction
from kamiyo.ingest.evidence import NONE, load_evidence
from kamiyo.ingest.matching import fuzzy_candidates, stored_sides, tx_hashes, write_merge_keys
from kamiyo.ingest.merge import DERIVED_FIELDS, derive, material_changes
from kamiyo.ingest.placement import Conflict, Placement, place
from kamiyo.ingest.summaries import SummaryDeltas
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import Report
from kamiyo.vocabulary.curation import Correction

BATCH = 5000
COMMUNITY = "community"
CORRECTED = (ReportRow.amount_usd, ReportRow.chain, ReportRow.category, ReportRow.timestamp)
MergeFacts = tuple[datetime, float | None, set[str]]
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
    "details",
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


def report_values(report: Report, exploit_id: int, now: datetime) -> dict[str, Any]:
    """The `reports` row of `report` on `exploit_id`, seen `now`."""
    return {
        "exploit_id": exploit_id,
        "source": report.source,
        "source_ref": report.source_ref,
        "url": report.url,
        "reported_at": report.reported_at,
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
        "details": report.details,
    }


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
    ReportRow.exploit_id, ReportRow.source, ReportRow.source_ref, ReportRow.protocol, ReportRow.timestamp,
    ReportRow.chain, ReportRow.tx_hash, ReportRow.amount_usd, ReportRow.amount_text, ReportRow.recovered_usd,
    ReportRow.category, ReportRow.description, ReportRow.attacker_address, ReportRow.details,
)  # fmt: skip
CHUNK = 5000


async def rederive(
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
    community = await community_corrections(session, ids)
    evidence = await load_evidence(session, reports)
    changed = []
    keys: dict[int, MergeFacts] = {}
    moved: set[int] = set()
    for exploit_id, rows in reports.items():
        after = derive(rows, community.get(exploit_id, ()), evidence.get(exploit_id, NONE))
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
        if report.incident is not None:  # an imported report of a stored one: the stored report stays
            result.reports_unchanged += 1
            continue
        values = report_values(report, row.exploit_id, now)
        if all(getattr(row, k) == values[k] for k in REPORT_FACTS) and row.raw == report.raw:
            result.reports_unchanged += 1
            continue
        await session.execute(
            update(ReportRow).where(ReportRow.id == row.id).values({k: values[k] for k in (*REPORT_FACTS, "raw")})
        )
        touched.add(row.exploit_id)
        result.reports_changed += 1

    placement = await _match(session, fresh)
    attach = placement.attach
    await _record_conflicts(session, placement.conflicts, now)
    touched.update(exploit_id for _, exploit_id in attach)
    keys = await _insert_incidents(session, placement.groups, attach, notify_since, now, deltas, result)
    if attach:
        await session.execute(
            insert(cast(Table, ReportRow.__table__)), [report_values(r, eid, now) for r, eid in attach]
        )
    result.reports_new += len(attach)

    changed, touched_keys, moved = await rederive(session, touched, now)
    keys.update(touched_keys)
    await _note_changes(session, changed, notify=notify_since is not None, now=now, deltas=deltas, result=result)
    await write_merge_keys(session, keys, moved)
    await session.flush()
    return result


async def _note_changes(
    session: AsyncSession,
    changed: list[tuple[int, dict[str, Any], dict[str, Any]]],
    *,
    notify: bool,
    now: datetime,
    deltas: SummaryDeltas,
    result: StoreResult,
) -> None:
    """Count re-derived records in the daily summaries; `exploit.updated` for announced ones whose material
    facts changed (when `notify`)."""
    material = {exploit_id: material_changes(before, after) for exploit_id, before, after in changed}
    announced = await _announced(session, [e for e, c in material.items() if c]) if notify else set()
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


async def rederive_records(
    session: AsyncSession, exploit_ids: Iterable[int], *, now: datetime | None = None
) -> StoreResult:
    """Re-derive these records after their evidence changed (a price, a block time), the way a new report
    would: facts, merge keys, daily summaries, the response cache, and `exploit.updated` for announced ones."""
    now = now or utcnow()
    result, deltas = StoreResult(), SummaryDeltas()
    ids = list(exploit_ids)
    for start in range(0, len(ids), CHUNK):
        changed, keys, moved = await rederive(session, ids[start : start + CHUNK], now)
        await _note_changes(session, changed, notify=True, now=now, deltas=deltas, result=result)
        await write_merge_keys(session, keys, moved)
    await deltas.apply(session)
    if result.updated:
        await bump_data_version(session)
    await session.flush()
    return result


async def _match(session: AsyncSession, fresh: list[Report]) -> Placement:
    """Stored incidents by tx hash, fuzzy candidates for the rest (one query each), then placement."""
    by_tx = await _exploits_by_tx(session, {h for r in fresh for h in tx_hashes(r)})
    untied = [i for i, r in enumerate(fresh) if r.incident is None and not any(h in by_tx for h in tx_hashes(r))]
    found = await fuzzy_candidates(session, [fresh[i] for i in untied])
    candidates = {untied[i]: ids for i, ids in found.items()}
    wanted = {e for ids in candidates.values() for e in ids} | set(by_tx.values())
    return place(fresh, by_tx, await stored_sides(session, wanted), candidates)


async def _record_conflicts(session: AsyncSession, conflicts: list[Conflict], now: datetime) -> None:
    rows = {
        (c.report.source, c.report.source_ref, c.exploit_id): {
            "source": c.report.source,
            "source_ref": c.report.source_ref,
            "exploit_id": c.exploit_id,
            "tx_hash": c.tx_hash,
            "reason": c.reason,
            "created_at": now,
        }
        for c in conflicts
    }
    if rows:
        table = cast(Table, MergeConflict.__table__)
        dialect = session.get_bind().dialect.name
        statement = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        await session.execute(statement.on_conflict_do_nothing(), list(rows.values()))


async def community_corrections(session: AsyncSession, exploit_ids: list[int]) -> dict[int, list[Correction]]:
    """Approved community corrections (`community` reports `correction:<id>`) as corrections of their record:
    they outrank every source, as curated corrections do, and survive re-ingest the same way."""
    found: dict[int, list[Correction]] = {}
    for start in range(0, len(exploit_ids), CHUNK):
        rows = await session.execute(
            select(ReportRow.exploit_id, ReportRow.source_ref, ReportRow.url, *CORRECTED)
            .where(ReportRow.exploit_id.in_(exploit_ids[start : start + CHUNK]), is_correction())
            .order_by(ReportRow.id)
        )
        for row in rows:
            reason = f"community correction {row.source_ref.removeprefix(CORRECTION_REF)}, approved on review"
            for column in CORRECTED:
                value = getattr(row, column.key)
                if value not in (None, "", "other"):
                    found.setdefault(row.exploit_id, []).append(
                        Correction(f"{COMMUNITY}:{row.source_ref}", column.key, value, reason, row.url)
                    )
    return found


async def _insert_incidents(
    session: AsyncSession,
    groups: list[list[Report]],
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
    facts = [derive(group) | {"verified_on_chain": False, "first_seen_at": now, "updated_at": now} for group in groups]
    for group, exploit_id, fact in zip(groups, await _insert_exploits(session, facts), facts, strict=True):
        attach.extend((report, exploit_id) for report in group)
        keys[exploit_id] = (fact["timestamp"], fact["amount_usd"], {r.protocol for r in group})
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
        # A batch ends between imported rows, never inside one: a row's reports form one incident.
        if len(batch) >= BATCH and (report.incident is None or report.incident != batch[-1].incident):
            result.add(await _store_batch(session, batch, notify_since, now, deltas))
            batch = []
        batch.append(report)
    if batch:
        result.add(await _store_batch(session, batch, notify_since, now, deltas))
    await deltas.apply(session)
    if result.reports_new or result.reports_changed:
        await bump_data_version(session)
    return result
