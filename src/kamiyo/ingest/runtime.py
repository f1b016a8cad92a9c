"""Life of the ingest scheduler (and the enrichment jobs beside it) inside the API process (`kamiyo serve`)."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from kamiyo.config import Settings

log = logging.getLogger(__name__)


def ingest_wanted(settings: Settings) -> bool:
    """On unless `kamiyo serve --no-workers` (KAMIYO_RUN_WORKERS=0) or KAMIYO_OFFLINE."""
    return os.environ.get("KAMIYO_RUN_WORKERS", "").strip() != "0" and not settings.offline


async def start_ingest(app: FastAPI, settings: Settings) -> None:
    app.state.ingest_scheduler = None
    if not ingest_wanted(settings):
        app.state.workers["ingest"] = "offline" if settings.offline else "off"
        return
    from kamiyo.enrich.schedule import EnrichScheduler
    from kamiyo.ingest.scheduler import IngestScheduler

    scheduler = IngestScheduler(app.state.db, settings)
    await scheduler.start()
    app.state.ingest_scheduler = scheduler
    app.state.workers["ingest"] = scheduler.status
    enrich = EnrichScheduler(app.state.db, settings)
    await enrich.start()
    app.state.enrich_scheduler = enrich
    app.state.workers["enrich"] = enrich.status
    log.info("ingest scheduler started", extra={"sources": len(scheduler.sources), "jobs": enrich.status["jobs"]})


async def stop_ingest(app: FastAPI) -> None:
    enrich = getattr(app.state, "enrich_scheduler", None)
    if enrich is not None:
        await enrich.stop()
        app.state.enrich_scheduler = None
    scheduler = getattr(app.state, "ingest_scheduler", None)
    if scheduler is not None:
        await scheduler.stop()
        app.state.ingest_scheduler = None
