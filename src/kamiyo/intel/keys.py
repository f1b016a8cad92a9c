"""Stable keys of many exploits at once (the MISP manifest), and the incident UUID → exploit lookup.

Both walk exploits by id in batches (keyset paging), reading only the columns they need plus each one's
first report (the same order `sources[]` uses), whose `source:ref` is the stable key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.cache import DATA_VERSION
from kamiyo.exploits.models import Exploit, Meta, ReportRow, is_public, report_order
from kamiyo.intel import ids

BATCH = 5000
LATE_COMMIT = timedelta(minutes=1)
KEY_COLUMNS = (
    Exploit.id,
    Exploit.tx_hash,
    Exploit.protocol,
    Exploit.chain,
    Exploit.category,
    Exploit.amount_usd,
    Exploit.loss_kind,
    Exploit.timestamp,
    Exploit.updated_at,
)


@dataclass(frozen=True, slots=True)
class Keyed:
    row: Any  # the KEY_COLUMNS of one exploit
    uuid: int  # its incident UUID, as an integer


async def keyed_batches(
    session: AsyncSession, *where: ColumnElement[bool], after: int = 0, batch: int = BATCH
) -> AsyncIterator[list[Keyed]]:
    """Every public exploit above id `after` matching `where`, in id order, in batches, each with its
    incident UUID."""
    last = after
    while True:
        stmt = select(*KEY_COLUMNS).where(is_public(), Exploit.id > last, *where).order_by(Exploit.id).limit(batch)
        rows = list(await session.execute(stmt))
        if not rows:
            return
        last = rows[-1].id
        first = await _first_reports(session, [r.id for r in rows])
        yield [
            Keyed(row, ids.incident_int(ids.key_from_report(*first[row.id]) if row.id in first else f"id:{row.id}"))
            for row in rows
        ]
        if len(rows) < batch:
            return


async def _first_reports(session: AsyncSession, exploit_ids: list[int]) -> dict[int, tuple[str, str]]:
    """(source, ref) of each exploit's first report: for ids close together one range of the exploit_id
    index, else the ids in chunks."""
    first: dict[int, tuple[str, str]] = {}
    if not exploit_ids:
        return first
    low, high = exploit_ids[0], exploit_ids[-1]
    if high - low < 4 * len(exploit_ids):
        chunks = [ReportRow.exploit_id.between(low, high)]
    else:
        chunks = [ReportRow.exploit_id.in_(exploit_ids[i : i + 1000]) for i in range(0, len(exploit_ids), 1000)]
    for condition in chunks:
        rows = await session.execute(
            select(ReportRow.exploit_id, ReportRow.source, ReportRow.source_ref)
            .where(condition)
            .order_by(ReportRow.exploit_id, *report_order())
        )
        for exploit_id, source, ref in rows:
            first.setdefault(exploit_id, (source, ref))
    return first


class IncidentIndex:
    """Incident UUID → exploit id, for the paths that are addressed by UUID (a MISP event, TAXII `match[id]`).

    UUIDv5 cannot be reversed, so the map is built by reading every exploit's stable key once, then kept
    current: while the data version (bumped by every writer of exploits) stays the same nothing is read;
    when it moves, only the exploits changed since (`updated_at` from a minute before the last one seen,
    for writers that committed late) or added since (a higher id). An entry can go stale when an
    exploit's first report changes: callers check the exploit they find still has the UUID asked.
    """

    def __init__(self) -> None:
        self._ids: dict[int, int] = {}
        self._seen_at: datetime | None = None
        self._max_id = 0
        self._version: int | None = None
        self._lock = asyncio.Lock()

    async def refresh(self, session: AsyncSession) -> None:
        async with self._lock:
            version = (await session.execute(select(Meta.value).where(Meta.key == DATA_VERSION))).scalar()
            if version is not None and version == self._version:
                return
            if self._seen_at is not None:  # changed since: a range of the updated_at index
                since = self._seen_at - LATE_COMMIT
                changed = await session.execute(select(Exploit.id).where(Exploit.updated_at >= since))
                changed_ids = [i for (i,) in changed if i <= self._max_id]
                for start in range(0, len(changed_ids), BATCH):
                    await self._add(keyed_batches(session, Exploit.id.in_(changed_ids[start : start + BATCH])))
            await self._add(keyed_batches(session, after=self._max_id))  # added since: a range of the key
            self._version = version  # read first: a write after it moves the version again

    async def _add(self, batches: AsyncIterator[list[Keyed]]) -> None:
        async for batch in batches:
            for item in batch:
                self._ids[item.uuid] = item.row.id
                self._max_id = max(self._max_id, item.row.id)
                if self._seen_at is None or item.row.updated_at > self._seen_at:
                    self._seen_at = item.row.updated_at

    async def find(self, session: AsyncSession, uuids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        await self.refresh(session)
        return {u: self._ids[u.int] for u in uuids if u.int in self._ids}


def incident_index(state: Any) -> IncidentIndex:
    """The app's index (one per process, made on first use)."""
    index: IncidentIndex | None = getattr(state, "intel_index", None)
    if index is None:
        index = state.intel_index = IncidentIndex()
    return index
