"""When the rules change, every stored record is re-derived once: the rules version and the curated files.

`kamiyo db upgrade` (and every command that brings a database up to date) calls `refresh_records`; it compares
`records_fingerprint()` with the one stored in `meta` and re-derives everything through the store's path when
they differ.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.cache import bump_data_version
from kamiyo.exploits.models import Exploit, Meta
from kamiyo.ingest.health import forget_validators
from kamiyo.ingest.matching import write_merge_keys
from kamiyo.ingest.store import CHUNK, rederive
from kamiyo.ingest.summaries import SummaryDeltas
from kamiyo.kit.timeutil import utcnow

# Bump when the derivation or placement rules change, so `kamiyo db upgrade` re-derives stored records.
RULES_VERSION = 4
RECORDS_VERSION = "records_version"


def records_fingerprint() -> int:
    """The rules version and the curated files, as one number that changes when any of them does."""
    digest = hashlib.sha256(str(RULES_VERSION).encode())
    for name in ("aliases.toml", "corrections.toml"):
        digest.update(resources.files("kamiyo").joinpath("data", "curation", name).read_bytes())
    return int.from_bytes(digest.digest()[:7], "big")


async def refresh_records(session: AsyncSession, *, force: bool = False) -> int | None:
    """Re-derive every stored record (facts, corrections, merge keys, daily summaries) when the rules or the
    curated files changed since the last refresh; None when nothing changed. Silent: an upgrade alerts nobody.
    Reports stay where they are (a changed placement rule applies to reports stored from then on); every
    source reads its feeds in full at its next run, so stored reports gain the facts newer parsers read."""
    fingerprint = records_fingerprint()
    stored = await session.execute(select(Meta.value).where(Meta.key == RECORDS_VERSION))
    known = stored.scalar_one_or_none()
    if known == fingerprint and not force:
        return None
    if known != fingerprint:
        await forget_validators(session)
    now, deltas, changed_count = utcnow(), SummaryDeltas(), 0
    ids = list((await session.execute(select(Exploit.id).order_by(Exploit.id))).scalars())
    for start in range(0, len(ids), CHUNK):
        changed, keys, _ = await rederive(session, ids[start : start + CHUNK], now)
        for _, before, after in changed:
            deltas.changed(before, after)
        await write_merge_keys(session, keys, set(keys))  # aliases may have changed every key
        changed_count += len(changed)
    await deltas.apply(session)
    await mark_records_current(session, known)
    if changed_count:
        await bump_data_version(session)
    return changed_count


async def mark_records_current(session: AsyncSession, known: int | None = -1) -> None:
    """Note that every stored record follows the current rules (after a refresh, or a seed of an empty database)."""
    if known == -1:
        known = (await session.execute(select(Meta.value).where(Meta.key == RECORDS_VERSION))).scalar_one_or_none()
    if known is None:
        session.add(Meta(key=RECORDS_VERSION, value=records_fingerprint()))
    else:
        await session.execute(update(Meta).where(Meta.key == RECORDS_VERSION).values(value=records_fingerprint()))
