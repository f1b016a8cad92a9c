"""Where each new report of a batch goes: a stored incident, a new incident, or apart from a clashing hash.

Pure (no I/O): `kamiyo.ingest.store` loads what it needs and writes the outcome. Order of the steps:
1. a tx hash shared with a stored incident joins it when `tx_fits`, and when the source is not in it yet
   or names it alike (`_may_join`); a hash that does not fit is recorded as a conflict and decides nothing;
2. the remaining reports (not rows of `kamiyo import`, which are exploits, not fuzzy reports) and the
   stored candidates: every pair the fuzzy rule accepts, best pair first across the batch;
3. what is left forms new incidents: the reports of one import row together, then shared hashes
   (`tx_fits`; one source twice only under one name), then fuzzy pairs, best first; otherwise two groups
   join only when no source is in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kamiyo.ingest.matching import WIDE_WINDOW, Side, fits, rank, tx_fits, tx_hashes
from kamiyo.sources.base import Report


@dataclass
class Conflict:
    report: Report
    exploit_id: int
    tx_hash: str
    reason: str


@dataclass
class Placement:
    attach: list[tuple[Report, int]] = field(default_factory=list)
    groups: list[list[Report]] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


def _reason(report: Side, stored: Side) -> str:
    if report.chain not in (None, "", "other", "multichain") and stored.chain != report.chain:
        return f"shared tx hash, but chain {report.chain} against {stored.chain} and another name"
    return "shared tx hash, but more than 3 days apart and another name"


def place(
    fresh: Sequence[Report],
    by_tx: dict[str, int],
    stored: dict[int, Side],
    candidates: dict[int, list[int]],
) -> Placement:
    out = Placement()
    sides = [Side.of(r) for r in fresh]
    placed: dict[int, int] = {}  # position -> stored exploit id
    grouped = {i for i, r in enumerate(fresh) if r.incident}
    rows: dict[str, list[int]] = {}
    for i in sorted(grouped):
        rows.setdefault(str(fresh[i].incident), []).append(i)
    for members in rows.values():  # an import row joins a stored incident by hash only, all its reports together
        target = _by_hash(fresh, sides, members, by_tx, stored, out)
        if target is not None:
            for i in members:
                if _may_join(sides[i], stored[target]):
                    placed[i] = target
                    stored[target].absorb(sides[i])
    for i in range(len(fresh)):
        if i not in grouped:
            target = _by_hash(fresh, sides, [i], by_tx, stored, out)
            if target is not None and _may_join(sides[i], stored[target]):
                placed[i] = target
                stored[target].absorb(sides[i])
    pairs = sorted(
        (rank(sides[i], stored[e]), i, e)
        for i, ids in candidates.items()
        if i not in placed and i not in grouped
        for e in ids
        if e in stored and fits(sides[i], stored[e])
    )
    for _, i, e in pairs:
        if i not in placed and fresh[i].source not in stored[e].sources:
            placed[i] = e
            stored[e].absorb(sides[i])
    out.attach = [(fresh[i], e) for i, e in placed.items()]
    out.groups = _new_incidents(fresh, sides, [i for i in range(len(fresh)) if i not in placed], rows)
    return out


def _may_join(report: Side, stored: Side) -> bool:
    """A report tied to an incident by its tx hash joins it, unless its source already reported the incident
    under another name (one hash pasted into two PoCs). The same hash under the same name is the source
    listing the incident twice: one incident, whose `sources[]` names the source once."""
    return not (report.sources & stored.sources) or bool(report.keys & stored.keys)


def _by_hash(
    fresh: Sequence[Report],
    sides: list[Side],
    members: list[int],
    by_tx: dict[str, int],
    stored: dict[int, Side],
    out: Placement,
) -> int | None:
    for i in members:
        for tx in tx_hashes(fresh[i]):
            e = by_tx.get(tx)
            if e is None or e not in stored:
                continue
            if tx_fits(sides[i], stored[e]):
                return e
            out.conflicts.append(Conflict(fresh[i], e, tx, _reason(sides[i], stored[e])))
    return None


class _Groups:
    """Union of positions into new incidents, each with the merged side of its members."""

    def __init__(self, sides: list[Side], positions: list[int]) -> None:
        self.parent = {i: i for i in positions}
        self.side = {i: _copy(sides[i]) for i in positions}

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int, *, force: bool = False) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb or (not force and self.side[ra].sources & self.side[rb].sources):
            return
        self.parent[rb] = ra
        self.side[ra].absorb(self.side.pop(rb))


def _copy(side: Side) -> Side:
    return Side(side.keys, side.ts, side.amount, side.chain, side.hashes, set(side.sources))


def _new_incidents(
    fresh: Sequence[Report], sides: list[Side], left: list[int], rows: dict[str, list[int]]
) -> list[list[Report]]:
    groups = _Groups(sides, left)
    remaining = set(left)
    for members in rows.values():
        members = [i for i in members if i in remaining]
        for i in members[1:]:
            groups.join(members[0], i, force=True)
    grouped = {i for members in rows.values() for i in members}
    first_of: dict[str, int] = {}
    for i in left:
        for tx in tx_hashes(fresh[i]):
            j = first_of.setdefault(tx, i)
            if j != i and tx_fits(sides[i], sides[j]):
                groups.join(j, i, force=bool(sides[i].keys & sides[j].keys))
    pairs = []
    by_key: dict[str, list[int]] = {}
    for i in left:
        if i not in grouped:
            for key in sides[i].keys:
                by_key.setdefault(key, []).append(i)
    span = WIDE_WINDOW.total_seconds()
    for members in by_key.values():
        members.sort(key=lambda i: sides[i].ts)
        for n, i in enumerate(members):
            for j in members[n + 1 :]:
                if sides[j].ts - sides[i].ts > span:
                    break
                if fits(sides[i], sides[j]):
                    pairs.append((rank(sides[i], sides[j]), i, j))
    for _, i, j in sorted(pairs):
        groups.join(i, j)
    found: dict[int, list[Report]] = {}
    for i in left:
        found.setdefault(groups.find(i), []).append(fresh[i])
    return list(found.values())
