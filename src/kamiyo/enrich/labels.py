"""Address labels: refresh the enrichment feeds into `address_labels`, and look labels up in batches.

An exploit's attacker address carries a label when it is on a list (an OFAC-sanctioned party, a
known scam address). Each feed is replaced as a whole on refresh: new addresses are added, changed
labels updated, addresses no longer listed removed; `added_at` keeps when an address first appeared.
Lookups are one indexed query per page of exploits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.enrich.models import AddressLabel
from kamiyo.kit.timeutil import utcnow

BATCH = 2000
_EVM = re.compile(r"0x[0-9a-fA-F]{40}")
_OTHER = re.compile(r"[A-Za-z0-9:]{25,100}")


def label_address(value: str) -> str | None:
    """The stored form of an address: EVM lower-cased, others (Bitcoin, Tron, Solana…) as written."""
    value = value.strip().rstrip(".;,")
    if _EVM.fullmatch(value):
        return value.lower()
    return value if _OTHER.fullmatch(value) and not value.startswith("0x") else None


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


def lookup_key(address: str | None) -> str | None:
    """The stored form of an address as exploits state it (EVM in any case)."""
    return label_address(address) if address else None


async def labels_for(session: AsyncSession, addresses: Iterable[str | None]) -> dict[str, list[dict[str, str]]]:
    """{stored address: [{"label", "source"}, …]} for those of `addresses` that are on a list; one query."""
    keys = sorted({k for a in addresses if (k := lookup_key(a))})
    found: dict[str, list[dict[str, str]]] = {}
    for start in range(0, len(keys), BATCH):
        rows = await session.execute(
            select(AddressLabel.address, AddressLabel.label, AddressLabel.source)
            .where(AddressLabel.address.in_(keys[start : start + BATCH]))
            .order_by(AddressLabel.address, AddressLabel.source)
        )
        for address, label, source in rows:
            found.setdefault(address, []).append({"label": label, "source": source})
    return found
