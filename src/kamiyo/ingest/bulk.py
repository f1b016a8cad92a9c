"""The bulk path of `kamiyo import`: lone incidents skip the merge machinery, everything else goes through it.

`store_reports` places each report of a batch of BATCH in an incident: one with a shared tx hash, one the
fuzzy rule picks, or a new one. Most rows of a large import meet nothing there: no stored or earlier report
shares their tx hash or (source, source_ref), no merge key of their protocol lies within the fuzzy window,
and no other report of their batch relates to them. For those store_reports makes one exploit out of the one
report; `kamiyo.ingest.bulk_load.Loader` writes exactly those rows, many at a time. Every other report goes
through store_reports in file order, in what is left of the batch it would have been in, after the lone rows
before it are stored.

`Seen` sorts them. It may only over-estimate what a report meets (a false alarm costs time, never a
different result): it knows hashes of the stored and earlier tx hashes and references, the span of times per
(protocol key, day) of stored merge keys and of the file's reports, and "tainted" keys: every key of an
incident that a report handed to store_reports may reach. Such an incident's keys move with its derived time
and names, so a report under a tainted key is never taken for a lone one.

While the loader has indexes down, reports for store_reports wait (no later lone row meets them), at most
MAX_WAITING of them. Everything runs in one transaction: an import that fails or is killed leaves the
tables, indexes and triggers as they were. Other writers wait for its commit (SQLite: they give up after
their busy timeout), as they did for each 20,000-row chunk of the plain path, but for the whole import.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain, islice, pairwise

from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.db import Database
from kamiyo.exploits.models import Exploit, ReportRow
from kamiyo.ingest import store
from kamiyo.ingest.bulk_load import Loader
from kamiyo.ingest.matching import WIDE_WINDOW, tx_hashes
from kamiyo.ingest.models import MergeKey
from kamiyo.ingest.store import StoreResult, store_reports
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import Report
from kamiyo.vocabulary.protocols import protocol_match_key

BULK_MIN = 20_000  # smaller imports take the plain path: store_reports per CHUNK reports, one transaction each
CHUNK = 20_000
MAX_WAITING = 100_000
SLACK = WIDE_WINDOW.total_seconds() + 1.0  # the fuzzy window, with a margin for float rounding
DAY = 86_400
NEAR_DAYS = WIDE_WINDOW.days + 1  # days either side that hold a report the fuzzy window may reach
# Writers wait until the import commits: nothing may change what `Seen` read (readers go on).
log = logging.getLogger(__name__)
LOCK = {
    "sqlite": "UPDATE kamiyo_meta SET value = value WHERE 1 = 0",
    "postgresql": "LOCK TABLE exploits, reports IN SHARE ROW EXCLUSIVE MODE",
}
Owner = int | str  # a stored exploit's id, or the protocol key of one of the file's reports
Owners = Owner | tuple[Owner, ...]
# tx hashes, reference, key, time, may join by the fuzzy rule, the imported row it belongs to (0: none)
Probe = tuple[tuple[int, ...], int, str, float, bool, int]


def _probe(report: Report) -> Probe:
    hashes = tx_hashes(report) if report.tx_hashes else (report.tx_hash,) if report.tx_hash else ()
    return (
        tuple(map(hash, hashes)),
        hash((report.source, report.source_ref)),
        protocol_match_key(report.protocol),
        report.timestamp.timestamp(),
        report.incident is None,
        hash(report.incident) if report.incident is not None else 0,
    )


def _own(table: dict[int, Owners], value: int, owner: Owner) -> None:
    old = table.get(value)
    if old is None:
        table[value] = owner
    elif old != owner and not (isinstance(old, tuple) and owner in old):
        table[value] = (*(old if isinstance(old, tuple) else (old,)), owner)


class Seen:
    """What is stored or earlier in the file, as far as telling lone incidents apart needs."""

    def __init__(self) -> None:
        self.tx: dict[int, Owners] = {}
        self.refs: dict[int, Owners] = {}
        self.spans: dict[str, dict[int, list[float]]] = {}  # key -> day -> [first, last] time
        self.stored: dict[str, dict[int, list[tuple[float, int]]]] = {}  # stored merge keys: key -> day -> (ts, id)
        self.keys_of: dict[int, list[str]] = {}
        self.tainted: set[str] = set()

    async def load(self, session: AsyncSession) -> None:
        found = await session.execute(select(Exploit.tx_hash, Exploit.id).where(Exploit.tx_hash.is_not(None)))
        for tx, exploit_id in found:
            _own(self.tx, hash(tx), exploit_id)
        reports = await session.execute(
            select(ReportRow.tx_hash, ReportRow.source, ReportRow.source_ref, ReportRow.exploit_id)
        )
        for tx, source, ref, exploit_id in reports:
            if tx:
                _own(self.tx, hash(tx), exploit_id)
            _own(self.refs, hash((source, ref)), exploit_id)
        for exploit_id, key, ts in await session.execute(select(MergeKey.exploit_id, MergeKey.key, MergeKey.ts)):
            self.keys_of.setdefault(exploit_id, []).append(key)
            self.stored.setdefault(key, {}).setdefault(int(ts // DAY), []).append((ts, exploit_id))
            self._span(key, ts)

    def sort(self, batch: Sequence[Report]) -> list[bool]:
        """For one store batch: which reports need store_reports (True) and which are lone incidents."""
        probes = [_probe(r) for r in batch]
        slow = [self._meets(p) for p in probes]
        _related(probes, slow)
        for probe, is_slow in zip(probes, slow, strict=True):
            if is_slow:
                self._taint_reach(probe)
        tx, refs, span = self.tx, self.refs, self._span
        for hashes, ref, key, ts, _, _ in probes:
            for h in hashes:
                if h in tx:
                    _own(tx, h, key)
                else:
                    tx[h] = key
            if ref in refs:
                _own(refs, ref, key)
            else:
                refs[ref] = key
            if key:
                span(key, ts)
        return slow

    def _span(self, key: str, ts: float) -> None:
        days = self.spans.get(key)
        if days is None:
            days = self.spans[key] = {}
        span = days.get(int(ts // DAY))
        if span is None:
            days[int(ts // DAY)] = [ts, ts]
        elif ts < span[0]:
            span[0] = ts
        elif ts > span[1]:
            span[1] = ts

    def _meets(self, probe: Probe) -> bool:
        hashes, ref, key, ts, fuzzy, _ = probe
        if ref in self.refs:
            return True
        for h in hashes:
            if h in self.tx:
                return True
        if not (fuzzy and key):
            return False
        if key in self.tainted:
            return True
        days = self.spans.get(key)
        if not days:
            return False
        day = int(ts // DAY)
        for near in range(day - NEAR_DAYS, day + NEAR_DAYS + 1):
            span = days.get(near)
            if span is not None and span[0] - SLACK <= ts <= span[1] + SLACK:
                return True
        return False

    def _taint_reach(self, probe: Probe) -> None:
        """Taint every key of every incident this report may join or change (its own key included)."""
        hashes, ref, key, ts, fuzzy, _ = probe
        reached = [self.tx[h] for h in hashes if h in self.tx]
        if ref in self.refs:
            reached.append(self.refs[ref])
        if fuzzy and key in self.stored:
            day, days = int(ts // DAY), self.stored[key]
            for near in range(day - NEAR_DAYS, day + NEAR_DAYS + 1):
                reached.extend(e for t, e in days.get(near, ()) if abs(t - ts) <= SLACK)
        self.tainted.add(key)
        for owners in reached:
            for owner in owners if isinstance(owners, tuple) else (owners,):
                self.tainted.update((owner,) if isinstance(owner, str) else self.keys_of.get(owner, ()))
        self.tainted.discard("")


def _related(probes: Sequence[Probe], slow: list[bool]) -> None:
    """Mark reports of one batch that share a tx hash, a reference or an imported row, or (those the fuzzy rule
    may join) fall in one fuzzy window."""
    rows = (((p[5],) if p[5] else ()) for p in probes)
    for values in ((p[0] for p in probes), ((p[1],) for p in probes), rows):
        first: dict[int, int] = {}
        for i, group in enumerate(values):
            for value in group:
                j = first.setdefault(value, i)
                if j != i:
                    slow[i] = slow[j] = True
    by_key: dict[str, list[tuple[float, int]]] = {}
    for i, p in enumerate(probes):
        if p[2] and p[4]:
            by_key.setdefault(p[2], []).append((p[3], i))
    for times in by_key.values():
        if len(times) > 1:
            times.sort()
            for (a, i), (b, j) in pairwise(times):
                if b - a <= SLACK:
                    slow[i] = slow[j] = True


def _batches(reports: Iterable[Report], size: int) -> Iterator[list[Report]]:
    stream = iter(reports)
    while batch := list(islice(stream, size)):
        yield batch


async def bulk_store(
    session: AsyncSession,
    reports: Iterable[Report],
    *,
    notify_since: datetime | None,
    now: datetime,
    advance: Callable[[int], None] = lambda _: None,
) -> StoreResult:
    """Store `reports` as store_reports would, batch by batch, lone incidents through `Loader`."""
    await session.execute(text(LOCK.get(session.get_bind().dialect.name, "SELECT 1")))
    seen, loader = Seen(), Loader(session, notify_since=notify_since, now=now)
    await seen.load(session)
    await loader.start()
    return await _store_all(session, reports, seen, loader, notify_since=notify_since, now=now, advance=advance)


async def _store_all(
    session: AsyncSession,
    reports: Iterable[Report],
    seen: Seen,
    loader: Loader,
    *,
    notify_since: datetime | None,
    now: datetime,
    advance: Callable[[int], None],
) -> StoreResult:
    result = StoreResult()
    waiting: list[list[Report]] = []

    async def merge(batches: list[list[Report]]) -> None:
        for slow in batches:
            result.add(await store_reports(session, slow, notify_since=notify_since, now=now))
            advance(len(slow))
        batches.clear()

    for batch in _batches(reports, store.BATCH):
        flags = seen.sort(batch)
        await loader.add([r for r, is_slow in zip(batch, flags, strict=True) if not is_slow])
        slow = [r for r, is_slow in zip(batch, flags, strict=True) if is_slow]
        advance(len(batch) - len(slow))
        if slow:
            waiting.append(slow)
        if waiting and (not loader.down or sum(map(len, waiting)) >= MAX_WAITING):
            await loader.settle()
            await loader.restore()
            await merge(waiting)
    await loader.settle()
    await loader.restore()
    await merge(waiting)
    result.add(loader.result)
    return result


async def import_reports(
    db: Database,
    reports: Iterable[Report],
    *,
    notify_since: datetime | None,
    advance: Callable[[int], None] = lambda _: None,
) -> StoreResult:
    """`kamiyo import`: below BULK_MIN reports store_reports per CHUNK (a transaction each), else `bulk_store`
    in one transaction."""
    stream = iter(reports)
    head = list(islice(stream, BULK_MIN))
    total = StoreResult()
    if len(head) < BULK_MIN:
        for start in range(0, len(head), CHUNK):
            async with db.session() as session:
                total.add(await store_reports(session, head[start : start + CHUNK], notify_since=notify_since))
            advance(len(head[start : start + CHUNK]))
        return total
    collecting = gc.isenabled()
    gc.disable()  # millions of short-lived acyclic objects: the cycle collector would only re-scan them
    journal_switched = False
    try:
        async with db.session() as session:
            journal_switched = await _leave_wal(session)
            return await bulk_store(
                session, chain(head, stream), notify_since=notify_since, now=utcnow(), advance=advance
            )
    finally:
        if journal_switched:
            await _back_to_wal(db)
        if collecting:
            gc.enable()


async def _leave_wal(session: AsyncSession) -> bool:
    """SQLite: a rollback journal for the import when nobody else has the database open (True if switched).

    In WAL mode each page of a one-transaction import is written twice, to the WAL and then, at the
    checkpoint, to the database: ~2 GB twice for 1M rows, a quarter of the import's time. With a rollback
    journal new pages go to the database once (a killed import is still rolled back, from the journal).
    With another connection open SQLite keeps WAL (readers then go on reading during the import)."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    try:
        mode = (await session.execute(text("PRAGMA journal_mode=DELETE"))).scalar()
    except OperationalError:  # locked by another connection: stay in WAL
        return False
    return str(mode).lower() == "delete"


async def _back_to_wal(db: Database) -> None:
    try:
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    except OperationalError as exc:  # every new connection asks for WAL again anyway
        log.warning("import: could not switch back to WAL yet (%s)", exc)
