"""Address labels: refresh the enrichment feeds into `address_labels` (looked up by `kamiyo.exploits.labels`).

An exploit's attacker address carries a label when it is on a list (an OFAC-sanctioned party, a
known scam address). Each feed is replaced as a whole on refresh: new addresses are added, changed
labels updated, addresses no longer listed removed; `added_at` keeps when an address first appeared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.evidence_models import AddressLabel
from kamiyo.exploits.labels import BATCH
from kamiyo.kit.timeutil import utcnow


@dataclass(frozen=True, slots=True)
class Label:
    address: str
    label: str


@dataclass
class RefreshOutcome:
    feed: str
    status: str  # ok | not_modified | failed
    labels: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    error: str | None = None


async def replace_feed(
    session: AsyncSession, source: str, labels: Iterable[Label], now: datetime | None = None
) -> RefreshOutcome:
    """Make `source`'s rows equal to `labels` (one per address); never commits."""
    now = now or utcnow()
    wanted = {label.address: label.label for label in labels}
    rows = await session.execute(select(AddressLabel.address, AddressLabel.label).where(AddressLabel.source == source))
    current: dict[str, str] = {address: label for address, label in rows}
    new = [
        {"address": a, "label": text, "source": source, "added_at": now}
        for a, text in wanted.items()
        if a not in current
    ]
    changed = [(a, text) for a, text in wanted.items() if a in current and current[a] != text]
    gone = [a for a in current if a not in wanted]
    for start in range(0, len(new), BATCH):
        await session.execute(insert(AddressLabel), new[start : start + BATCH])
    for address, text in changed:
        await session.execute(
            update(AddressLabel)
            .where(AddressLabel.source == source, AddressLabel.address == address)
            .values(label=text)
        )
    for start in range(0, len(gone), BATCH):
        chunk = gone[start : start + BATCH]
        await session.execute(
            delete(AddressLabel).where(AddressLabel.source == source, AddressLabel.address.in_(chunk))
        )
    return RefreshOutcome(source, "ok", len(wanted), len(new), len(changed), len(gone))
