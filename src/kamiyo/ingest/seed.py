"""The bundled default dataset (DeFiHackLabs, Apache-2.0), stored on first start."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.models import Exploit, ReportRow
from kamiyo.ingest.health import record_run
from kamiyo.ingest.refresh import mark_records_current
from kamiyo.ingest.store import StoreResult, store_reports
from kamiyo.sources import defihacklabs

log = logging.getLogger(__name__)


async def seed_default_dataset(session: AsyncSession) -> StoreResult | None:
    """Store the bundled incidents unless this database already has them; silent (no alerts)."""
    present = await session.execute(select(ReportRow.id).where(ReportRow.source == defihacklabs.NAME).limit(1))
    if present.first() is not None:
        return None
    reports = defihacklabs.load_bundled()
    empty = (await session.execute(select(Exploit.id).limit(1))).first() is None
    result = await store_reports(session, reports)
    if empty:  # every record was derived just now, by the current rules
        await mark_records_current(session)
    await record_run(session, defihacklabs.NAME, ok=True, items=len(reports))
    log.info("bundled dataset stored", extra={"reports": len(reports), "exploits": len(result.created)})
    return result
