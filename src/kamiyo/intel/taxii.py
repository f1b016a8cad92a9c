"""The `exploits` TAXII 2.1 collection: the fixed objects, then each exploit's objects, in date-added order.

An exploit's objects are added together, at its `updated_at` (a new version replaces the old: only the
latest version is served). The fixed objects (Kamiyo, the extension definition, the registered sources)
come first, added at `EPOCH`. The identity of a source outside the registry (an import's, say) travels
with each exploit it reported: the same object each time, so a client that stores by id keeps one.
A page holds at most `limit` objects (the server's largest page is `MAX_LIMIT`) and may end inside an
exploit's objects; `next` is where it ended: (date added, exploit id, objects of it already served).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.errors import InvalidInput
from kamiyo.exploits import service
from kamiyo.exploits.models import Exploit, is_public
from kamiyo.intel import ids, stix
from kamiyo.intel.keys import IncidentIndex
from kamiyo.paging import decode_cursor, encode_cursor
from kamiyo.sources import REGISTRY

MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = stix.MEDIA_TYPE
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before any exploit was added
# About how many objects of each type one exploit yields (an indicator for 3 in 4, one source or two).
PER_EXPLOIT = {"incident": 1.0, "indicator": 0.75, "relationship": 1.75, "identity": 0.0}
EXPLOIT_TYPES = frozenset(PER_EXPLOIT)
_NEXT_KIND = "taxii"
# A page reads at most this many exploits per object asked for (a type filter can make most of them
# yield nothing): a sparse page ends early, with `more` and a `next`, rather than reading without bound.
SCAN_PER_OBJECT = 5


def taxii_time(value: datetime) -> str:
    """TAXII timestamps at microsecond precision (so `added_after` of a served date is exact)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class Position:
    added: datetime
    exploit_id: int  # 0: the fixed objects
    skip: int = 0


@dataclass(slots=True)
class Page:
    objects: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    more: bool = False
    next: str | None = None


@dataclass(slots=True)
class Match:
    added_after: datetime | None = None
    types: frozenset[str] | None = None
    object_ids: frozenset[str] | None = None

    def keeps(self, obj: dict[str, Any]) -> bool:
        return (self.types is None or obj["type"] in self.types) and (
            self.object_ids is None or obj["id"] in self.object_ids
        )


def decode_next(token: str) -> Position:
    kind, value, exploit_id = decode_cursor(token)
    try:
        if kind != _NEXT_KIND:
            raise ValueError("not a TAXII token")
        added, skip = value
        return Position(datetime.fromisoformat(str(added).replace("Z", "+00:00")), exploit_id, int(skip))
    except (TypeError, ValueError) as exc:
        raise InvalidInput("next: not a token issued by this server", details=[{"field": "next"}]) from exc


def encode_next(position: Position) -> str:
    return encode_cursor(_NEXT_KIND, [taxii_time(position.added), position.skip], position.exploit_id)


async def resolve_ids(session: AsyncSession, index: IncidentIndex, object_ids: frozenset[str]) -> list[int]:
    """The exploits that the asked-for object ids can belong to (ids are reversed to their incident UUID)."""
    candidates: list[uuid.UUID] = []
    for object_id in object_ids:
        _, _, raw = object_id.partition("--")
        try:
            candidates += ids.candidate_bases(uuid.UUID(raw), sorted(REGISTRY))
        except ValueError:
            continue
    return sorted(set((await index.find(session, candidates)).values())) if candidates else []


async def objects_page(
    session: AsyncSession, match: Match, *, limit: int, position: Position | None, exploit_ids: list[int] | None
) -> Page:
    """Up to `limit` objects from `position` on; `exploit_ids` (from `match[id]`) narrows the exploits."""
    page = Page()
    at = position or Position(EPOCH, -1)
    wanted = limit
    if (at.added, at.exploit_id) <= (EPOCH, 0) and (match.added_after is None or match.added_after < EPOCH):
        fixed = [o for o in stix.fixed_objects() if match.keeps(o)]
        skip = at.skip if at.exploit_id == 0 else 0
        taken = fixed[skip : skip + wanted]
        page.objects += [(EPOCH, o) for o in taken]
        wanted -= len(taken)
        if skip + len(taken) < len(fixed):
            return _stop(page, Position(EPOCH, 0, skip + len(taken)))
        at = Position(EPOCH, 0, 0)
    if match.types is not None and not match.types & EXPLOIT_TYPES:
        return page
    if exploit_ids is not None and not exploit_ids:
        return page
    where: list[ColumnElement[bool]] = [is_public()]
    if match.added_after is not None:
        where.append(Exploit.updated_at > match.added_after)
    if exploit_ids is not None:
        where.append(Exploit.id.in_(exploit_ids))
    if match.types is not None and match.types & EXPLOIT_TYPES == {"indicator"}:
        where.append(Exploit.attacker_address.is_not(None))  # only exploits with an attacker address have one
    budget = max(limit, 1) * SCAN_PER_OBJECT
    types = (match.types or EXPLOIT_TYPES) & EXPLOIT_TYPES
    per_exploit = 1.0 if types == {"indicator"} else max(0.25, sum(PER_EXPLOIT[t] for t in types))
    first = True
    while True:
        batch_size = min(budget, int(wanted / per_exploit) + 2)
        rows = await _exploits_from(session, where, at, batch_size + 1)
        batch, ahead = rows[:batch_size], len(rows) > batch_size
        budget -= len(batch)
        exploits = {e["id"]: e for e in await service.exploits_by_ids(session, [r.id for r in batch])}
        for row in batch:
            skip = at.skip if first and (row.updated_at, row.id) == (at.added, at.exploit_id) else 0
            first = False
            exploit = exploits.get(row.id)
            objects = [o for o in stix.exploit_objects(exploit) if match.keeps(o)] if exploit else []
            taken = objects[skip : skip + wanted]
            page.objects += [(row.updated_at, o) for o in taken]
            wanted -= len(taken)
            if skip + len(taken) < len(objects):
                return _stop(page, Position(row.updated_at, row.id, skip + len(taken)))
            at = Position(row.updated_at, row.id + 1, 0)  # past this exploit
            if wanted == 0:
                return _stop(page, at) if ahead or row is not batch[-1] else page
        if not ahead:
            return page
        if budget <= 0:
            return _stop(page, at)
        first = False


async def _exploits_from(
    session: AsyncSession, where: list[ColumnElement[bool]], at: Position, limit: int
) -> list[Any]:
    """(id, updated_at) of up to `limit` exploits from `at` on, in date-added order. Two index ranges (the
    rest of `at`'s date by id, then the later dates) rather than one row-value comparison, which the
    planners walk from the start of the date: an import gives all its rows one date."""
    columns = select(Exploit.id, Exploit.updated_at).where(*where)
    in_order = (Exploit.updated_at, Exploit.id)
    rows: list[Any] = []
    if at.exploit_id > 0:  # not the fixed objects' made-up date: then no exploit has it
        same = columns.where(Exploit.updated_at == at.added, Exploit.id >= at.exploit_id)
        rows += await session.execute(same.order_by(*in_order).limit(limit))
    if len(rows) < limit:
        later = columns.where(Exploit.updated_at > at.added).order_by(*in_order)
        rows += list(await session.execute(later.limit(limit - len(rows))))
    return rows


def _stop(page: Page, position: Position) -> Page:
    page.more = True
    page.next = encode_next(position)
    return page
